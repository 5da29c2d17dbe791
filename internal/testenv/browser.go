package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// EnvChromium names the Chromium (or Chrome) binary browser tests run
// instead of Debian's /usr/bin/chromium.
const EnvChromium = "TALLY_TEST_CHROMIUM"

// EnvArtifacts names a directory where tests save what a person should be
// able to look at afterwards (screenshots of the console); `make test`
// sets it to ./artifacts. Unset, artefacts go to the test's temporary
// directory, and the test logs where.
const EnvArtifacts = "TALLY_TEST_ARTIFACTS"

// debianChromium is where Debian's chromium package puts the browser.
var debianChromium = "/usr/bin/chromium"

// chromiumPath finds the browser: EnvChromium, Debian's chromium, or a
// chromium or Chrome on PATH.
func chromiumPath() (string, error) {
	if p := os.Getenv(EnvChromium); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvChromium, p, err)
		}
		return path, nil
	}
	if isExecutable(debianChromium) {
		return debianChromium, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("chromium is not installed: run `make deps` (apt-get install -y chromium), or set %s to a Chromium binary", EnvChromium)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Browser starts a headless Chromium for this test, with a fresh profile,
// and returns a chromedp context for one tab; the browser is stopped when
// the test ends. Like ClickHouse, a missing browser fails the test with
// the command that installs it. The flags suit a root user on a machine
// without network: no sandbox (root), no GPU, and none of the background
// requests (updates, sync, QUIC probes) a browser makes on its own. The
// browser's time zone is UTC. Give every step its own deadline (Within,
// Eval): chromedp waits for a selector forever otherwise.
func Browser(t testing.TB) context.Context {
	t.Helper()
	path, err := chromiumPath()
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
		chromedp.Env("TZ=UTC"),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first run starts the browser, which lives as long as the
	// context of that run: so not one with a deadline.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start %s: %v", path, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start within 30s", path)
	}
	return watchProblems(t, ctx)
}

// pageProblems collects what went wrong in the pages of a tab: uncaught
// exceptions and the browser's error log (a script or style the
// Content-Security-Policy refused, a failed request).
type pageProblems struct {
	mu   sync.Mutex
	list []string
}

type problemsKey struct{}

func (p *pageProblems) add(s string) {
	p.mu.Lock()
	p.list = append(p.list, s)
	p.mu.Unlock()
}

// watchProblems starts collecting the problems of the tab of ctx and
// returns ctx carrying them (BrowserProblems).
func watchProblems(t testing.TB, ctx context.Context) context.Context {
	t.Helper()
	p := &pageProblems{}
	exceptions := chromedp.Events(ctx, cdpruntime.ExceptionThrown)
	entries := chromedp.Events(ctx, cdplog.EntryAdded)
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("enable the browser's log: %v", err)
	}
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil {
				text += " " + d.Exception.Description
			}
			p.add(fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, text))
		}
	}()
	go func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			if e := ev.Entry; e.Level == cdplog.EntryLevelError || e.Level == cdplog.EntryLevelWarning {
				p.add(fmt.Sprintf("%s %s: %s (%s)", e.Level, e.Source, e.Text, e.URL))
			}
		}
	}()
	return context.WithValue(ctx, problemsKey{}, p)
}

// BrowserProblems returns what went wrong in the pages of the tab of ctx
// so far: uncaught exceptions, and errors and warnings of the browser's
// log, such as a Content-Security-Policy violation.
func BrowserProblems(ctx context.Context) []string {
	p, ok := ctx.Value(problemsKey{}).(*pageProblems)
	if !ok {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.list)
}

// Within runs steps in the tab of ctx, failing the test with what if they
// fail or do not complete within d.
func Within(t testing.TB, ctx context.Context, d time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	stepCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(stepCtx, steps...); err != nil {
		t.Fatalf("%s: %v%s", what, err, problemsText(ctx))
	}
}

// Eval evaluates a JavaScript expression in the tab of ctx and returns
// its value decoded into T, failing the test if it throws or takes more
// than 10 s.
func Eval[T any](t testing.TB, ctx context.Context, expression string) T {
	t.Helper()
	stepCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(stepCtx, chromedp.Evaluate[T](expression))
	if err != nil {
		t.Fatalf("evaluate %s: %v%s", expression, err, problemsText(ctx))
	}
	return v
}

// problemsText is the problems of the tab, for a failure message.
func problemsText(ctx context.Context) string {
	if p := BrowserProblems(ctx); len(p) > 0 {
		return "\nin the browser:\n  " + strings.Join(p, "\n  ")
	}
	return ""
}

// ArtifactsDir returns the directory of this test's artefacts: under
// EnvArtifacts when set (created), else the test's temporary directory.
func ArtifactsDir(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvArtifacts)
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Screenshot saves a full-page PNG of the tab of ctx as name.png in dir
// and logs where.
func Screenshot(t testing.TB, ctx context.Context, dir, name string) {
	t.Helper()
	stepCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(stepCtx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

package testenv

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tally binary, built once per test binary by TallyBinary.
var tallyBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// TallyBinary builds ./cmd/tally of this module once per test binary and
// returns its path. Tests that run Tally as a user does (`tally all`, the
// client verbs) use it.
func TallyBinary() (string, error) {
	tallyBin.once.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			tallyBin.err = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		if tallyBin.dir, err = os.MkdirTemp("", "tally-test-bin-"); err != nil {
			tallyBin.err = err
			return
		}
		path := filepath.Join(tallyBin.dir, "tally")
		cmd := exec.Command("go", "build", "-o", path, "./cmd/tally")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			tallyBin.err = fmt.Errorf("go build ./cmd/tally: %v\n%s", err, out)
			return
		}
		tallyBin.path = path
	})
	return tallyBin.path, tallyBin.err
}

// TallyAll is `tally all` run from the built binary: the whole pipeline
// with its embedded broker and private ClickHouse, in a temporary data
// dir, on ports of its own.
type TallyAll struct {
	URL        string // the one base URL of every API route (the :8000 of make run)
	IngestURL  string
	QueryURL   string
	AggURL     string
	Key        string // the dev organization's API key
	DataDir    string
	cmd        *exec.Cmd
	output     *SyncBuffer
	done       chan struct{}
	stopOnce   sync.Once
	stopErr    error
	removeData bool
}

// TallyAllOptions are the settings of StartTallyAll; zero values are fine.
type TallyAllOptions struct {
	Key  string   // the dev key (default: a fixed test key)
	Args []string // more flags of `tally all`
}

const tallyAllReadyTimeout = 90 * time.Second

// StartTallyAll builds the binary (once) and starts `tally all` with a
// temporary data dir, the dev key, events of any age accepted (tests use
// fixed dates) and ports from StablePort, and waits until ingest, query
// and the aggregator are ready. Stop it with Stop. It takes no testing.T
// so that a TestMain can start one for a package's Example tests.
func StartTallyAll(opts TallyAllOptions) (*TallyAll, error) {
	bin, err := TallyBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tally-test-all-")
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		return nil, err
	}
	ports := make([]int, 5)
	for i := range ports {
		if ports[i], err = stablePort(); err != nil {
			return nil, err
		}
	}
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	if opts.Key == "" {
		opts.Key = "tally-test-dev-key-0123456789"
	}
	t := &TallyAll{
		URL: "http://" + addr(ports[0]), IngestURL: "http://" + addr(ports[1]),
		QueryURL: "http://" + addr(ports[2]), AggURL: "http://" + addr(ports[3]),
		Key: opts.Key, DataDir: dir, output: &SyncBuffer{}, done: make(chan struct{}), removeData: true,
	}
	args := append([]string{"all",
		"-api.listen-addr=" + addr(ports[0]),
		"-ingest.listen-addr=" + addr(ports[1]),
		"-query.listen-addr=" + addr(ports[2]),
		"-aggregator.listen-addr=" + addr(ports[3]),
		"-dev.kafka-port=" + strconv.Itoa(ports[4]),
		"-ingest.max-event-age=87600h",
	}, opts.Args...)
	t.cmd = exec.Command(bin, args...)
	// The developer's own TALLY_* settings must not leak in.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TALLY_") {
			t.cmd.Env = append(t.cmd.Env, kv)
		}
	}
	t.cmd.Env = append(t.cmd.Env, "TALLY_DATA_DIR="+dir, "TALLY_DEV_API_KEY="+opts.Key)
	t.cmd.Stdout, t.cmd.Stderr = t.output, t.output
	t.cmd.WaitDelay = 5 * time.Second
	// Should the test binary die, tally all (and with it its ClickHouse)
	// goes too.
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := t.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = t.cmd.Wait()
		close(t.done)
	}()
	if err := t.waitReady(); err != nil {
		_ = t.Stop()
		return nil, fmt.Errorf("%w\ntally all output:\n%s", err, t.Output())
	}
	return t, nil
}

// StartTallyAllT is StartTallyAll for one test: it fails the test on an
// error and stops `tally all` when the test ends.
func StartTallyAllT(tb testing.TB, opts TallyAllOptions) *TallyAll {
	tb.Helper()
	t, err := StartTallyAll(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := t.Stop(); err != nil {
			tb.Errorf("stop tally all: %v\n%s", err, t.Output())
		}
	})
	return t
}

func (t *TallyAll) waitReady() error {
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(tallyAllReadyTimeout)
	for _, base := range []string{t.IngestURL, t.QueryURL, t.AggURL} {
		for {
			select {
			case <-t.done:
				return errors.New("tally all exited before it was ready")
			default:
			}
			resp, err := client.Get(base + "/readyz")
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s/readyz not ready after %s", base, tallyAllReadyTimeout)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// Output is what tally all has printed so far.
func (t *TallyAll) Output() string { return t.output.String() }

// Stop stops tally all with SIGTERM (a kill after 30 s) and removes its
// data dir; it may be called more than once.
func (t *TallyAll) Stop() error {
	t.stopOnce.Do(func() {
		_ = t.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-t.done:
		case <-time.After(30 * time.Second):
			_ = t.cmd.Process.Kill()
			<-t.done
			t.stopErr = errors.New("tally all did not stop within 30 s of SIGTERM; killed")
		}
		if t.removeData {
			if err := os.RemoveAll(t.DataDir); err != nil && t.stopErr == nil {
				t.stopErr = err
			}
		}
	})
	return t.stopErr
}

// stopTallyBinary removes the built binary (Main calls it).
func stopTallyBinary() error {
	if tallyBin.dir == "" {
		return nil
	}
	return os.RemoveAll(tallyBin.dir)
}

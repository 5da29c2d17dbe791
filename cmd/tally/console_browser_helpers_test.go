package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tally-oss/tally/internal/testenv"
)

// consoleBrowser drives one tab of the console.
type consoleBrowser struct {
	t   *testing.T
	ctx context.Context
	dir string
}

// open navigates to url; with ready, it waits for the page's data.
func (b *consoleBrowser) open(url string, ready bool) {
	b.t.Helper()
	testenv.Within(b.t, b.ctx, 15*time.Second, "open "+url, chromedp.Navigate(url))
	if ready {
		b.waitReady(url)
	} else {
		testenv.Within(b.t, b.ctx, 10*time.Second, "key form of "+url, chromedp.WaitVisible(chromedp.CSS("#key-form")))
	}
}

func (b *consoleBrowser) enterKey(key string) {
	b.t.Helper()
	testenv.Within(b.t, b.ctx, 10*time.Second, "enter the key",
		chromedp.WaitVisible(chromedp.CSS("#key-input")),
		chromedp.SendKeys(chromedp.CSS("#key-input"), key),
		chromedp.Click(chromedp.CSS("#key-form button[type=submit]")))
}

// forgetKey clicks "forget the key" and waits for the key form.
func (b *consoleBrowser) forgetKey() {
	b.t.Helper()
	testenv.Within(b.t, b.ctx, 10*time.Second, "forget the key", chromedp.Click(chromedp.CSS("#forget-key")),
		chromedp.WaitVisible(chromedp.CSS("#key-form")))
}

// waitState waits until the page has loaded its data or failed to, and
// returns which: "ready" or "error".
func (b *consoleBrowser) waitState() string {
	b.t.Helper()
	testenv.Within(b.t, b.ctx, 20*time.Second, "wait for the page's data",
		chromedp.Poll[chromedp.Void](`document.body.dataset.state === "ready" || document.body.dataset.state === "error"`,
			chromedp.WithPollingInterval(20*time.Millisecond)))
	return testenv.Eval[string](b.t, b.ctx, `document.body.dataset.state`)
}

// waitReady waits until the page has loaded its data, and fails with the
// error it shows if it could not.
func (b *consoleBrowser) waitReady(what string) {
	b.t.Helper()
	if state := b.waitState(); state != "ready" {
		b.t.Fatalf("%s: %s: %s", what, state, b.text("#error"))
	}
}

func (b *consoleBrowser) text(css string) string {
	b.t.Helper()
	return testenv.Eval[string](b.t, b.ctx, fmt.Sprintf(`(document.querySelector(%q) || {textContent: "(no %s)"}).textContent`, css, css))
}

// rows returns the rows of a table's body as "cell|cell|..." lines, of
// the given columns only when some are given.
func (b *consoleBrowser) rows(table string, columns ...int) []string {
	b.t.Helper()
	cells := testenv.Eval[[][]string](b.t, b.ctx, fmt.Sprintf(
		`[...document.querySelectorAll(%q)].map(tr => [...tr.cells].map(td => td.textContent))`, table+" tbody tr"))
	out := []string{}
	for _, row := range cells {
		if len(columns) > 0 {
			var picked []string
			for _, c := range columns {
				if c < len(row) {
					picked = append(picked, row[c])
				}
			}
			row = picked
		}
		out = append(out, strings.Join(row, "|"))
	}
	return out
}

func (b *consoleBrowser) setValue(css, value string) {
	b.t.Helper()
	testenv.Within(b.t, b.ctx, 10*time.Second, "set "+css, chromedp.SetValue(chromedp.CSS(css), value))
}

// submit submits a form of the page and waits for its data.
func (b *consoleBrowser) submit(form string) {
	b.t.Helper()
	testenv.Within(b.t, b.ctx, 10*time.Second, "submit "+form, chromedp.Click(chromedp.CSS(form+" button[type=submit]")))
	b.waitReady("submit " + form)
}

func (b *consoleBrowser) screenshot(name string) {
	b.t.Helper()
	testenv.Screenshot(b.t, b.ctx, b.dir, name)
}

// noAcme fails if the page shows anything of acme's.
func (b *consoleBrowser) noAcme(what string) {
	b.t.Helper()
	if text := testenv.Eval[string](b.t, b.ctx, `document.body.innerText`); strings.Contains(strings.ToLower(text), "acme") {
		b.t.Errorf("globex's %s shows acme's data:\n%s", what, text)
	}
}

// usageParams are the usage query parameters of the page's form, as the
// page keeps them in its address, without meter and range, which are not
// API parameters (with a range of this month, from and to are left to
// the API's defaults).
func (b *consoleBrowser) usageParams() string {
	b.t.Helper()
	v, err := url.ParseQuery(strings.TrimPrefix(testenv.Eval[string](b.t, b.ctx, `location.search`), "?"))
	if err != nil {
		b.t.Fatal(err)
	}
	if v.Get("range") != "month" {
		b.t.Fatalf("range %q: the download's from and to are not in the address", v.Get("range"))
	}
	v.Del("meter")
	v.Del("range")
	return v.Encode()
}

// components returns the status page's component cards as
// "name|ready|state|why|checks" lines.
func (b *consoleBrowser) components() []string {
	b.t.Helper()
	return testenv.Eval[[]string](b.t, b.ctx, `[...document.querySelectorAll("#components .component")].map(c =>
		[c.dataset.name, c.dataset.ready, c.querySelector(".big").textContent, c.querySelector(".why").textContent,
			c.querySelector(".checks").textContent].join("|"))`)
}

func wantRows(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

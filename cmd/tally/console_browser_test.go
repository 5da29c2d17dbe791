package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/tally-oss/tally/internal/testenv"
)

// readmeMeter is the meter of the README's "Try it".
const readmeMeter = `{"key": "tokens", "name": "LLM tokens", "event_type": "llm.completion",
	"aggregation": "SUM", "value_property": "$.usage.tokens",
	"group_by": {"model": "$.model"}, "filter": {"status": {"eq": "ok"}}}`

// readmeEvents are the README's evt-1..3.
func readmeEvents() []map[string]any {
	return []map[string]any{
		ev("evt-1", "llm.completion", "acme", "", map[string]any{"model": "gpt-4o", "status": "ok", "usage": map[string]any{"tokens": json.Number("1200.5")}}),
		ev("evt-2", "llm.completion", "acme", "", map[string]any{"model": "gpt-4o-mini", "status": "ok", "usage": map[string]any{"tokens": 300}}),
		ev("evt-3", "llm.completion", "acme", "", map[string]any{"model": "gpt-4o", "status": "error", "usage": map[string]any{"tokens": 999}}),
	}
}

// TestConsole loads every page of the usage console in headless Chromium
// against the real pipeline, with the README's example: the key is
// entered once (a wrong one is asked for again), the usage table shows
// the API's totals exactly and the chart has a series per group, the CSV
// download is the API's, the subscription's charges have their group
// lines, the dead letter created here is listed with its record (a
// 22-digit decimal shown as sent), the status has the counts and a card
// per component (ready, then the aggregator stopped), and another
// organization's console shows none of it. A screenshot of each
// page is saved (testenv.ArtifactsDir).
func TestConsole(t *testing.T) {
	const newKey = "initech-key-0123456789" // an organization with nothing yet
	p := startPipeline(t, "-api-keys=initech:"+newKey)
	p.mustAPI(acmeKey, "POST", "/api/v1/meters", readmeMeter, http.StatusCreated)
	p.mustAPI(globexKey, "POST", "/api/v1/meters", readmeMeter, http.StatusCreated)
	poison := ev("evt-4", "llm.completion", "acme", "", map[string]any{"model": "gpt-4o", "status": "ok",
		"usage": map[string]any{"tokens": "lots"}, "cost": json.Number("0.1000000000000000000001")})
	p.postEvents(acmeKey, append(readmeEvents(), poison)...)
	p.postEvents(globexKey,
		ev("g-1", "llm.completion", "globex-cust", "", map[string]any{"model": "gpt-4o", "status": "ok", "usage": map[string]any{"tokens": 777}}),
		ev("g-2", "llm.completion", "globex-cust", "", map[string]any{"model": "gpt-4o", "status": "ok", "usage": map[string]any{"tokens": true}}))
	// The README's catalog steps 4-6.
	p.mustAPI(acmeKey, "POST", "/api/v1/customers", `{"external_id": "acme", "name": "Acme Inc.", "email": "billing@acme.example",
		"currency": "USD", "timezone": "America/New_York"}`, http.StatusCreated)
	p.mustAPI(acmeKey, "POST", "/api/v1/plans", `{"code": "pro", "name": "Pro", "interval": "monthly", "amount_cents": 4900, "amount_currency": "USD",
		"minimum_commitment_cents": 10000,
		"charges": [{"id": "ch_tokens", "meter": "tokens", "charge_model": "graduated", "invoice_display_name": "LLM tokens",
			"properties": {"graduated_ranges": [
				{"from_value": 0, "to_value": 1000, "per_unit_amount": "0", "flat_amount": "0"},
				{"from_value": 1000, "to_value": null, "per_unit_amount": "0.002", "flat_amount": "1"}]}}]}`, http.StatusCreated)
	p.mustAPI(acmeKey, "POST", "/api/v1/subscriptions", `{"external_id": "sub_acme", "external_customer_id": "acme", "plan_code": "pro",
		"subscription_at": "2026-01-01T00:00:00-05:00"}`, http.StatusCreated)
	p.waitUsage(acmeKey, "tokens", params("group_by", "customer_id", "group_by", "model"),
		"customer_id=acme model=gpt-4o => 1200.5", "customer_id=acme model=gpt-4o-mini => 300")
	for _, key := range []string{acmeKey, globexKey} {
		waitFor(t, func() bool {
			return strings.Contains(string(p.mustAPI(key, "GET", "/api/v1/dead_letters", "", 200)), `"total":1`)
		},
			func() string {
				return "dead letters: " + string(p.mustAPI(key, "GET", "/api/v1/dead_letters", "", 200))
			})
	}

	ctx := testenv.Browser(t)
	b := &consoleBrowser{t: t, ctx: ctx, dir: testenv.ArtifactsDir(t)}
	base := p.apiURL + "/console" // `tally all`'s one base URL

	t.Run("Key", func(t *testing.T) {
		b.t = t
		b.open(base, false)
		b.enterKey("wrong-key-0123456789")
		testenv.Within(t, ctx, 10*time.Second, "the refused key is asked for again",
			chromedp.WaitVisible(chromedp.CSS("#key-problem")))
		if msg := b.text("#key-problem"); !strings.Contains(msg, "refused") {
			t.Errorf("key problem: %q", msg)
		}
		if stored := testenv.Eval[bool](t, ctx, `sessionStorage.length === 0 && localStorage.length === 0 && document.cookie === ""`); !stored {
			t.Error("a refused key is kept somewhere")
		}
		b.enterKey(acmeKey)
		b.waitReady("usage")
		if kept := testenv.Eval[string](t, ctx, `sessionStorage.getItem("tally.apiKey") + "|" + localStorage.length + "|" + document.cookie`); kept != acmeKey+"|0|" {
			t.Errorf("key kept as %q, want in sessionStorage only", kept)
		}
	})

	t.Run("ExactJSON", func(t *testing.T) {
		b.t = t
		// The pages parse the API's JSON numbers into their text, and a
		// member named __proto__ is data, not the object's prototype.
		got := testenv.Eval[string](t, ctx, `(() => {
			const v = Tally.parseExact('{"a": [1e400, -0.5, 12345678901234567890.123456789012, 0.1000000000000000000001], "__proto__": {"polluted": 1}, "s": "x\\"y"}');
			return [v.a.map(String).join(","), Object.getPrototypeOf(v) === Object.prototype, ({}).polluted === undefined, v.s,
				Tally.pretty(v.a)].join("|"); })()`)
		want := `1e400,-0.5,12345678901234567890.123456789012,0.1000000000000000000001|true|true|x"y|[` +
			"\n  1e400,\n  -0.5,\n  12345678901234567890.123456789012,\n  0.1000000000000000000001\n]"
		if got != want {
			t.Errorf("parseExact:\n got %s\nwant %s", got, want)
		}
	})

	t.Run("Usage", func(t *testing.T) {
		b.t = t
		b.open(base, true)
		wantRows(t, "totals", b.rows("#totals-table"), "acme|gpt-4o|1200.5", "acme|gpt-4o-mini|300")
		wantRows(t, "windows", b.rows("#windows-table", 2, 3, 4), "acme|gpt-4o|1200.5", "acme|gpt-4o-mini|300")
		chart := testenv.Eval[string](t, ctx, `(() => { const c = document.getElementById("chart");
			return c.dataset.rendered + "|" + c.dataset.series + "|" + c.dataset.points + "|" + c.querySelectorAll("canvas").length +
				"|" + [...c.querySelectorAll(".u-legend .u-series th")].map(th => th.textContent).join(";"); })()`)
		if chart != "true|2|1|1|window;customer_id=acme, model=gpt-4o;customer_id=acme, model=gpt-4o-mini" {
			t.Errorf("chart: %s", chart)
		}
		b.screenshot("usage")

		// The CSV download is the API's own text/csv.
		downloads := t.TempDir()
		if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads}); err != nil {
			t.Fatal(err)
		}
		testenv.Within(t, ctx, 10*time.Second, "download CSV", chromedp.Click(chromedp.CSS("#csv")))
		csvPath := filepath.Join(downloads, "tokens-usage.csv")
		waitFor(t, func() bool { _, err := os.Stat(csvPath); return err == nil }, func() string { return "no CSV downloaded" })
		got, err := os.ReadFile(csvPath)
		if err != nil {
			t.Fatal(err)
		}
		code, want := p.do("GET", p.queryURL+"/api/v1/meters/tokens/query?"+b.usageParams(), acmeKey, "", nil, "Accept", "text/csv")
		if code != 200 || string(got) != string(want) || !strings.Contains(string(got), ",acme,gpt-4o,1200.5\n") {
			t.Errorf("downloaded CSV:\n%s\nthe API's (%d):\n%s", got, code, want)
		}

		// An error of the API is shown with its code and message.
		b.setValue("#range", "custom")
		b.setValue("#from", "yesterday")
		testenv.Within(t, ctx, 10*time.Second, "submit a bad range", chromedp.Click(chromedp.CSS("#query button[type=submit]")))
		if state := b.waitState(); state != "error" || !strings.Contains(b.text("#error"), `validation_failed: invalid query parameters: from: "yesterday" must be an RFC 3339 time`) {
			t.Errorf("bad range: state %s, error %q", state, b.text("#error"))
		}
		testenv.Eval[string](t, ctx, `document.getElementById("from").value = ""`)

		// Another window and range: the same numbers, no chart without a window.
		b.setValue("#window", "")
		b.setValue("#range", "7d")
		b.submit("#query")
		wantRows(t, "totals over 7 days", b.rows("#totals-table"), "acme|gpt-4o|1200.5", "acme|gpt-4o-mini|300")
		if n := testenv.Eval[int](t, ctx, `document.querySelectorAll("#chart canvas").length`); n != 0 {
			t.Errorf("%d charts without a window", n)
		}
	})

	t.Run("Customers", func(t *testing.T) {
		b.t = t
		b.open(base+"/customers", true)
		wantRows(t, "subscriptions", b.rows("#subscriptions-table", 0, 1, 2, 3), "sub_acme|acme|pro|active")
		wantRows(t, "charges", b.rows("#charges-table"),
			"LLM tokens|tokens|graduated|1500.5|2|2.00",
			"model=gpt-4o|||1200.5|1|1.60",
			"model=gpt-4o-mini|||300|1|0.40")
		wantRows(t, "totals", b.rows("#usage-totals-table"),
			"Charges|2.00", "Fixed fee|49.00", "Minimum commitment|100.00", "Minimum commitment true-up|49.00", "Total|100.00")
		wantRows(t, "customers", b.rows("#customers-table", 0, 1, 2), "acme|Acme Inc.|billing@acme.example")
		b.screenshot("customers")
	})

	t.Run("DeadLetters", func(t *testing.T) {
		b.t = t
		b.open(base+"/dead-letters", true)
		wantRows(t, "by reason", b.rows("#reasons-table"), "value_not_number|1")
		wantRows(t, "latest", b.rows("#latest-table", 1, 3, 4), "acme|tokens|value_not_number")
		record := testenv.Eval[string](t, ctx, `document.querySelector("#latest-table details pre").textContent`)
		if !strings.Contains(record, `"cost": 0.1000000000000000000001`) || !strings.Contains(record, `"tokens": "lots"`) || !strings.Contains(record, `"id": "evt-4"`) {
			t.Errorf("the record of evt-4 as shown:\n%s", record)
		}
		b.screenshot("dead-letters")
	})

	t.Run("Status", func(t *testing.T) {
		b.t = t
		b.open(base+"/status", true)
		got := testenv.Eval[string](t, ctx, `["organization", "clickhouse", "events-hour", "events-day", "dead-letters", "meters"]
			.map(id => document.getElementById(id).textContent).join("|")`)
		if got != "acme|OK|4|4|1|1" {
			t.Errorf("status: %s", got)
		}
		wantRows(t, "components", b.components(),
			"query|true|ready||clickhouse ok",
			"ingest|true|ready||kafka ok",
			"aggregator|true|ready||clickhouse ok, consumer ok, kafka ok")
		b.screenshot("status")
		// A card shows what it is given as text, never as markup.
		got = testenv.Eval[string](t, ctx, `(() => {
			const card = Tally.componentCard({name: "<img src=x onerror=alert(1)>", ready: false,
				checks: {"b&c": "failing", "a<b>": "ok"}, error: ""});
			return card.querySelectorAll("img, b").length + "|" + card.textContent; })()`)
		if got != "0|<img src=x onerror=alert(1)>not readyfailing: b&ca<b> ok, b&c failing" {
			t.Errorf("a component card with markup in its names: %s", got)
		}
	})

	t.Run("MetersOnQueryPort", func(t *testing.T) {
		b.t = t
		// Another origin: the key is asked for again there.
		b.open(p.queryURL+"/console/meters", false)
		b.enterKey(acmeKey)
		b.waitReady("meters")
		wantRows(t, "meters", b.rows("#meters-table", 0, 1, 2, 3, 4, 5),
			"tokens|LLM tokens|llm.completion|SUM|$.usage.tokens|model ← $.model")
		b.screenshot("meters")
	})

	t.Run("OtherOrganization", func(t *testing.T) {
		b.t = t
		b.open(base, true)
		b.forgetKey()
		b.enterKey(globexKey)
		b.waitReady("usage as globex")
		wantRows(t, "globex totals", b.rows("#totals-table"), "globex-cust|gpt-4o|777")
		b.noAcme("usage")
		b.screenshot("globex-usage")
		b.open(base+"/dead-letters", true)
		wantRows(t, "globex dead letters", b.rows("#latest-table", 1, 3, 4), "globex-cust|tokens|value_not_number")
		b.noAcme("dead letters")
		for _, page := range []string{"/customers", "/status"} {
			b.open(base+page, true)
			b.noAcme(page)
		}
		if got := b.text("#organization") + "|" + b.text("#events-day"); got != "globex|2" {
			t.Errorf("globex status: %s", got)
		}
	})

	t.Run("NewOrganization", func(t *testing.T) {
		b.t = t
		b.open(base, true)
		b.forgetKey()
		b.enterKey(newKey)
		b.waitReady("usage without meters")
		testenv.Within(t, ctx, 5*time.Second, "the usage page says there are no meters",
			chromedp.WaitVisible(chromedp.CSS("#no-meters")), chromedp.WaitNotVisible(chromedp.CSS("#results")))
		b.screenshot("new-organization-usage")
		b.open(base+"/status", true)
		got := testenv.Eval[string](t, ctx, `["organization", "events-hour", "latest-event", "dead-letters", "meters"]
			.map(id => document.getElementById(id).textContent).join("|")`)
		if got != "initech|0|none yet|0|0" {
			t.Errorf("status of a new organization: %s", got)
		}
		for _, page := range []string{"/meters", "/customers", "/dead-letters"} {
			b.open(base+page, true)
			b.noAcme(page)
		}
	})

	t.Run("StatusAggregatorDown", func(t *testing.T) {
		b.t = t
		// Last: the aggregator stops. The status still loads (200), its
		// card says not ready and why, the others stay ready.
		p.stopAgg()
		want := []string{"query|true|ready||clickhouse ok", "ingest|true|ready||kafka ok", "aggregator|false|not ready|unreachable|"}
		waitFor(t, func() bool {
			b.open(base+"/status", true)
			return slices.Equal(b.components(), want)
		}, func() string {
			return fmt.Sprintf("components with the aggregator stopped: %q, want %q", b.components(), want)
		})
		b.screenshot("status-aggregator-down")
	})

	// No page threw, and the Content-Security-Policy refused nothing (the
	// wrong key's 401 and the bad range's 400 are the failed requests
	// expected).
	for _, problem := range testenv.BrowserProblems(ctx) {
		expected := strings.Contains(problem, "status of 401") ||
			strings.Contains(problem, "status of 400") && strings.Contains(problem, "from=yesterday")
		if !expected {
			t.Errorf("in the browser: %s", problem)
		}
	}
}

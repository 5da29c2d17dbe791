package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tally-oss/tally/internal/testenv"
)

// stubAPI serves the console and a stand-in for the query API's meters and
// usage routes, recording the query strings of the usage requests.
type stubAPI struct {
	mu      sync.Mutex
	queries []url.Values
	// usage answers one usage request; nil: no rows.
	usage func(q url.Values) map[string]any
}

func (s *stubAPI) recorded() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.queries)
}

// forget drops the query strings recorded so far.
func (s *stubAPI) forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries = nil
}

// consoleMux serves the console at Path; the tests add the API routes
// they stub.
func consoleMux(t *testing.T) *http.ServeMux {
	t.Helper()
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	mux.Handle(Path+"/", h)
	return mux
}

// browserWithStubKey opens the console's origin at base in a browser and
// keeps the key "stub-key" in its session, as a signed-in page would.
func browserWithStubKey(t *testing.T, base string) context.Context {
	t.Helper()
	ctx := testenv.Browser(t)
	testenv.Within(t, ctx, 15*time.Second, "open the origin", chromedp.Navigate(base+"/console/status"))
	testenv.Eval[bool](t, ctx, `(sessionStorage.setItem("tally.apiKey", "stub-key"), true)`)
	return ctx
}

func startStubAPI(t *testing.T, s *stubAPI) *httptest.Server {
	t.Helper()
	mux := consoleMux(t)
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /api/v1/meters", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"data": []any{map[string]any{
			"key": "tokens", "event_type": "llm.completion", "aggregation": "SUM", "value_property": "$.tokens",
			"group_by": map[string]string{"region": "$.region"}, "revision": 1}}})
	})
	mux.HandleFunc("GET /api/v1/meters/tokens/query", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		s.mu.Lock()
		s.queries = append(s.queries, q)
		s.mu.Unlock()
		body := map[string]any{"meter": "tokens", "from": "2026-12-01T00:00:00Z", "to": "2026-12-02T10:00:00Z",
			"window_size": nil, "window_time_zone": "UTC", "data": []any{}}
		if s.usage != nil {
			body = s.usage(q)
		}
		writeJSON(w, body)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestConsoleCustomerIDWithComma: a customer id may hold a comma (the API
// takes any text of 1 to 256 characters, and repeated customer_id
// parameters). The customers page links to the usage page with the
// customer's id; the usage page must then ask the API for that one
// customer, not for the pieces of its id between commas, which are other
// customers (or none): "acme, inc" is not "acme" and "inc".
func TestConsoleCustomerIDWithComma(t *testing.T) {
	s := &stubAPI{}
	srv := startStubAPI(t, s)
	ctx := browserWithStubKey(t, srv.URL)
	// The link the customers page builds for external_id "acme, inc"
	// (customers.js), and a filter value with a comma in the address.
	target := srv.URL + "/console?customer_id=" + url.QueryEscape("acme, inc") +
		"&filter%5Bregion%5D=" + url.QueryEscape("eu-west, dublin") + "&window_size="
	testenv.Within(t, ctx, 15*time.Second, "open the usage of acme, inc", chromedp.Navigate(target),
		waitReadyAction())
	qs := s.recorded()
	if len(qs) == 0 {
		t.Fatalf("no usage request%s", problems(ctx))
	}
	for _, q := range qs {
		if got := q["customer_id"]; !slices.Equal(got, []string{"acme, inc"}) {
			t.Errorf("usage asked for customer_id %q, want exactly [\"acme, inc\"] (query %s)", got, q.Encode())
		}
		if got := q["filter[region]"]; !slices.Equal(got, []string{"eu-west, dublin"}) {
			t.Errorf("usage asked for filter[region] %q, want exactly [\"eu-west, dublin\"]", got)
		}
	}
	// Submitting the form again (the field as the page filled it) asks
	// for the same customer, and the address keeps it for a reload.
	s.forget()
	testenv.Within(t, ctx, 10*time.Second, "submit", chromedp.Click(chromedp.CSS(`#query button[type=submit]`)),
		waitReadyAction())
	waitQueries(t, s, 1)
	for _, q := range s.recorded() {
		if got := q["customer_id"]; !slices.Equal(got, []string{"acme, inc"}) {
			t.Errorf("after a submit, usage asked for customer_id %q", got)
		}
	}
	loc := testenv.Eval[string](t, ctx, `location.search`)
	s.forget()
	testenv.Within(t, ctx, 15*time.Second, "reload", chromedp.Navigate(srv.URL+"/console"+loc),
		waitReadyAction())
	waitQueries(t, s, 1)
	for _, q := range s.recorded() {
		if got := q["customer_id"]; !slices.Equal(got, []string{"acme, inc"}) {
			t.Errorf("after a reload of %s, usage asked for customer_id %q", loc, got)
		}
	}

	// The list syntax: quotes keep commas, spaces and "" (a quote);
	// joinList writes what splitList reads back; an open quote or text
	// after a closing one is an error, not a guess.
	got := testenv.Eval[string](t, ctx, `(() => {
		const vals = Tally.splitList('"a""b", c ,, " x, y " ,d"e');
		const back = Tally.splitList(Tally.joinList(vals));
		const err = (s) => { try { Tally.splitList(s); return "no error"; } catch (e) { return "error"; } };
		return JSON.stringify(vals) + "|" + JSON.stringify(back) + "|" + Tally.joinList(vals) + "|" + err('"abc') + "|" + err('"a" b, c');
	})()`)
	if want := `["a\"b","c"," x, y ","d\"e"]|["a\"b","c"," x, y ","d\"e"]|"a""b", c, " x, y ", "d""e"|error|error`; got != want {
		t.Errorf("list syntax:\n got %s\nwant %s", got, want)
	}

	// Two customers typed in the field, one of them quoted because it
	// holds a comma, are two customers.
	testenv.Eval[bool](t, ctx, `(document.getElementById("customers").value = '"acme, inc", globex', true)`)
	s.forget()
	testenv.Within(t, ctx, 10*time.Second, "submit two", chromedp.Click(chromedp.CSS(`#query button[type=submit]`)))
	waitQueries(t, s, 1)
	for _, q := range s.recorded() {
		if got := q["customer_id"]; !slices.Equal(got, []string{"acme, inc", "globex"}) {
			t.Errorf("typed two customers, usage asked for %q", got)
		}
	}
}

func waitQueries(t *testing.T, s *stubAPI, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.recorded()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d usage requests", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the windowed request, if any
}

func problems(ctx context.Context) string {
	p := testenv.BrowserProblems(ctx)
	if len(p) == 0 {
		return ""
	}
	return "\nin the browser:\n  " + strings.Join(p, "\n  ")
}

// waitReadyAction waits until the page has loaded its data.
func waitReadyAction() chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](`document.body.dataset.state === "ready"`, chromedp.WithPollingInterval(20*time.Millisecond))
}

// TestConsoleTotalsAndWindowsShareOneRange: the usage page shows the
// totals (a request without a window) and the windows and chart (a
// second request with one), and offers the CSV (a third). With the
// default range ("this month so far", or the last 24 hours) `to` is left
// to the API, which takes its own now for each request: events metered
// between the requests make the totals table disagree with the window
// table and the CSV. The later requests must ask for the range the first
// answer states.
func TestConsoleTotalsAndWindowsShareOneRange(t *testing.T) {
	var mu sync.Mutex
	n := 0
	s := &stubAPI{usage: func(q url.Values) map[string]any {
		mu.Lock()
		defer mu.Unlock()
		n++
		from, to := q.Get("from"), q.Get("to")
		if from == "" {
			from = "2026-12-01T00:00:00-05:00"
		}
		if to == "" { // the API's now: later for each request
			to = fmt.Sprintf("2026-12-02T10:00:%02d.123456789-05:00", n)
		}
		return map[string]any{"meter": "tokens", "from": from, "to": to, "window_size": nil,
			"window_time_zone": "America/New_York", "data": []any{}}
	}}
	srv := startStubAPI(t, s)
	ctx := browserWithStubKey(t, srv.URL)
	for _, rng := range []string{"month", "24h"} {
		s.forget()
		testenv.Within(t, ctx, 15*time.Second, "open the usage", chromedp.Navigate(srv.URL+"/console?window_size=DAY&window_time_zone=America/New_York&range="+rng),
			waitReadyAction())
		waitQueries(t, s, 2)
		testenv.Within(t, ctx, 10*time.Second, "download CSV", chromedp.Click(chromedp.CSS("#csv")), waitReadyAction())
		waitQueries(t, s, 3)
		qs := s.recorded()
		if len(qs) != 3 {
			t.Fatalf("%s: %d usage requests, want 3 (totals, windows, CSV): %v", rng, len(qs), qs)
		}
		wantFrom := qs[0].Get("from")
		if wantFrom == "" {
			wantFrom = "2026-12-01T00:00:00-05:00"
		}
		wantTo := "2026-12-02T10:00:01.123456789-05:00" // the first answer's to
		if rng == "24h" {
			wantTo = "2026-12-02T10:00:04.123456789-05:00"
		}
		for i, what := range []string{"windows", "CSV"} {
			q := qs[i+1]
			if q.Get("from") != wantFrom || q.Get("to") != wantTo {
				t.Errorf("%s: the %s request asked for [%q, %q), the totals shown are for [%q, %q)", rng, what, q.Get("from"), q.Get("to"), wantFrom, wantTo)
			}
		}
	}
}

// TestConsoleLateAnswerOfAnEarlierQuery: the usage page runs a query on
// every submit and meter change without waiting for the one in flight.
// When the answer of an earlier query (meter "slow") arrives after the
// answer of a later one (meter "fast"), the page must keep showing the
// later query's numbers: the meter picked is "fast", and the tables must
// not show slow's usage under it.
func TestConsoleLateAnswerOfAnEarlierQuery(t *testing.T) {
	mux := consoleMux(t)
	meter := func(key string) map[string]any {
		return map[string]any{"key": key, "event_type": "e", "aggregation": "SUM", "value_property": "$.v", "group_by": map[string]string{}, "revision": 1}
	}
	mux.HandleFunc("GET /api/v1/meters", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"data": []any{meter("fast"), meter("slow")}})
	})
	var slowCalls sync.WaitGroup
	mux.HandleFunc("GET /api/v1/meters/{key}/query", func(w http.ResponseWriter, r *http.Request) {
		value := "111" // fast's usage
		if r.PathValue("key") == "slow" {
			value = "999"
			slowCalls.Add(1)
			defer slowCalls.Done()
			time.Sleep(1500 * time.Millisecond)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"meter": %q, "from": "2026-12-01T00:00:00Z", "to": "2026-12-02T00:00:00Z", "window_size": null,
			"window_time_zone": "UTC", "data": [{"window_start": "2026-12-01T00:00:00Z", "window_end": "2026-12-02T00:00:00Z",
			"customer_id": "c1", "group_by": {"customer_id": "c1"}, "value": %s}]}`, r.PathValue("key"), value)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ctx := browserWithStubKey(t, srv.URL)
	testenv.Within(t, ctx, 15*time.Second, "open the usage of slow", chromedp.Navigate(srv.URL+"/console?meter=slow&window_size="), waitReadyAction())
	// A submit of slow (its answer comes late), then a change to fast.
	testenv.Eval[bool](t, ctx, `(document.querySelector("#query button[type=submit]").click(), true)`)
	time.Sleep(200 * time.Millisecond)
	testenv.Eval[bool](t, ctx, `(() => { const s = document.getElementById("meter"); s.value = "fast";
		s.dispatchEvent(new Event("change")); return true; })()`)
	time.Sleep(300 * time.Millisecond)
	slowCalls.Wait()
	time.Sleep(500 * time.Millisecond)
	got := testenv.Eval[string](t, ctx, `document.getElementById("meter").value + "|" +
		[...document.querySelectorAll("#totals-table tbody td.num")].map(td => td.textContent).join(",")`)
	if got != "fast|111" {
		t.Errorf("meter and totals shown: %s, want fast|111 (999 is slow's usage)", got)
	}
}

// TestConsoleDeadLettersLateAnswer: on the dead-letters page too, the
// answer of a superseded filter must not replace the later filter's.
func TestConsoleDeadLettersLateAnswer(t *testing.T) {
	mux := consoleMux(t)
	var slowCalls sync.WaitGroup
	mux.HandleFunc("GET /api/v1/dead_letters", func(w http.ResponseWriter, r *http.Request) {
		customer := r.URL.Query().Get("customer_id")
		if customer == "slow" {
			slowCalls.Add(1)
			defer slowCalls.Done()
			time.Sleep(1500 * time.Millisecond)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"data": [{"customer_id": %q, "event_id": "e1", "event_type": "t", "meter_key": "m", "reason": "value_missing",
			"message": "m", "event": "", "time": "2026-12-01T00:00:00Z", "ingested_at": "2026-12-01T00:00:00Z",
			"dead_lettered_at": "2026-12-01T00:00:00Z"}], "by_reason": [{"reason": "value_missing", "count": 1}], "total": 1}`, customer)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ctx := browserWithStubKey(t, srv.URL)
	testenv.Within(t, ctx, 15*time.Second, "open the dead letters", chromedp.Navigate(srv.URL+"/console/dead-letters?customer_id=fast"), waitReadyAction())
	submit := func(customer string) {
		testenv.Eval[bool](t, ctx, `(() => { document.getElementById("customer").value = `+strconv.Quote(customer)+`;
			document.querySelector("#filter button[type=submit]").click(); return true; })()`)
	}
	submit("slow")
	time.Sleep(200 * time.Millisecond)
	submit("fast")
	time.Sleep(300 * time.Millisecond)
	slowCalls.Wait()
	time.Sleep(500 * time.Millisecond)
	got := testenv.Eval[string](t, ctx, `document.getElementById("customer").value + "|" +
		[...document.querySelectorAll("#latest-table tbody tr")].map(tr => tr.cells[1].textContent).join(",")`)
	if got != "fast|fast" {
		t.Errorf("filter and dead letters shown: %s, want fast|fast", got)
	}
}

// TestConsoleDeadLettersCustomerKeptAsTyped: a customer id is any string
// the API takes, spaces at its ends included; the dead-letters filter
// asks for it as typed (review 9b observed it trimmed).
func TestConsoleDeadLettersCustomerKeptAsTyped(t *testing.T) {
	mux := consoleMux(t)
	asked := make(chan string, 10)
	mux.HandleFunc("GET /api/v1/dead_letters", func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query(); q.Has("customer_id") {
			asked <- q.Get("customer_id")
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"data": [], "by_reason": [], "total": 0}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ctx := browserWithStubKey(t, srv.URL)
	testenv.Within(t, ctx, 15*time.Second, "open the dead letters", chromedp.Navigate(srv.URL+"/console/dead-letters"), waitReadyAction())
	testenv.Eval[bool](t, ctx, `(() => { document.getElementById("customer").value = " acme ";
		document.querySelector("#filter button[type=submit]").click(); return true; })()`)
	select {
	case got := <-asked:
		if got != " acme " {
			t.Errorf("customer_id asked for: %q, want %q", got, " acme ")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no dead-letters request with a customer_id")
	}
}

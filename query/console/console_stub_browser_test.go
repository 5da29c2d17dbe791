package console

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
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

func startStubAPI(t *testing.T, s *stubAPI) *httptest.Server {
	t.Helper()
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	mux.Handle(Path+"/", h)
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
	ctx := testenv.Browser(t)
	// The link the customers page builds for external_id "acme, inc"
	// (customers.js), and a filter value with a comma in the address.
	target := srv.URL + "/console?customer_id=" + url.QueryEscape("acme, inc") +
		"&filter%5Bregion%5D=" + url.QueryEscape("eu-west, dublin") + "&window_size="
	testenv.Within(t, ctx, 15*time.Second, "open the origin", chromedp.Navigate(srv.URL+"/console/status"))
	testenv.Eval[bool](t, ctx, `(sessionStorage.setItem("tally.apiKey", "stub-key"), true)`)
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
	s.mu.Lock()
	s.queries = nil
	s.mu.Unlock()
	testenv.Within(t, ctx, 10*time.Second, "submit", chromedp.Click(chromedp.CSS(`#query button[type=submit]`)),
		waitReadyAction())
	waitQueries(t, s, 1)
	for _, q := range s.recorded() {
		if got := q["customer_id"]; !slices.Equal(got, []string{"acme, inc"}) {
			t.Errorf("after a submit, usage asked for customer_id %q", got)
		}
	}
	loc := testenv.Eval[string](t, ctx, `location.search`)
	s.mu.Lock()
	s.queries = nil
	s.mu.Unlock()
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
	s.mu.Lock()
	s.queries = nil
	s.mu.Unlock()
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

package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// tally health exits 0 only on a 2xx answer: a failing readiness, a server
// that never answers and one that is not there all fail the check.
func TestHealth(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })
	mux.HandleFunc("/notready", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "clickhouse: connection refused", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/notready", http.StatusFound) })
	mux.HandleFunc("/hang", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	closed := httptest.NewServer(mux)
	closed.Close()

	ctx := context.Background()
	if err := runHealth(ctx, []string{srv.URL + "/ok"}); err != nil {
		t.Errorf("/ok: %v", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{srv.URL + "/notready"}, "503"},
		{[]string{srv.URL + "/moved"}, "clickhouse: connection refused"},
		{[]string{"-health.timeout=200ms", srv.URL + "/hang"}, "deadline exceeded"},
		{[]string{closed.URL + "/ok"}, "connection refused"},
		{[]string{}, "want 1 argument"},
		{[]string{srv.URL + "/ok", "extra"}, "want 1 argument"},
		{[]string{"-health.timeout=0s", srv.URL + "/ok"}, "must be positive"},
	} {
		err := runHealth(ctx, tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tally health %q: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

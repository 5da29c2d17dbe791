package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tally-oss/tally/ingest"
)

// TestAPIGatewayRoutes: the one base URL sends the write routes to ingest
// and the rest of /api/ and the usage console to query, and serves
// nothing else: the components' metrics, health and profiles are not
// public.
func TestAPIGatewayRoutes(t *testing.T) {
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) })
	}
	g := newAPIGateway("127.0.0.1:0", ingest.PublicPaths, named("ingest"), named("query"), slog.New(slog.DiscardHandler))
	for _, tt := range []struct{ method, path, want string }{
		{"POST", "/api/v1/events", "ingest"},
		{"GET", "/api/v1/events", "ingest"}, // ingest answers 405 itself
		{"POST", "/api/v1/events/batch", "ingest"},
		{"POST", "/api/v1/integration/organization/acme/usage", "ingest"},
		{"GET", "/api/v1/integration/organization/acme/customers", "query"},
		{"GET", "/api/v1/meters", "query"},
		{"GET", "/api/v1/customers/c1/current_usage", "query"},
		{"POST", "/api/v1/companies/cmp_acme/subscriptions/s1/usage", "query"},
		{"GET", "/api/v1/nothing", "query"}, // query's JSON 404
		{"GET", "/api/v1/dead_letters", "query"},
		{"GET", "/api/v1/status", "query"},
		{"GET", "/console", "query"}, // the usage console
		{"GET", "/console/dead-letters", "query"},
		{"GET", "/console/assets/console.js", "query"},
		{"GET", "/consoles", "404"},
		{"GET", "/metrics", "404"},
		{"GET", "/readyz", "404"},
		{"GET", "/debug/pprof/", "404"},
		{"GET", "/", "404"},
	} {
		rec := httptest.NewRecorder()
		g.Handler().ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		got := rec.Body.String()
		if rec.Code == http.StatusNotFound && strings.Contains(got, `"code":"not_found"`) {
			got = "404"
		}
		if got != tt.want {
			t.Errorf("%s %s went to %q (%d), want %s", tt.method, tt.path, got, rec.Code, tt.want)
		}
	}
}

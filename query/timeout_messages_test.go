package query

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTimeoutMessagesFitTheRoute: a route whose ClickHouse work outlasts
// -query.timeout says so with advice that fits it. Usage queries may be
// narrowed by their parameters (their advice says so); the dead letters
// and the catalog take none of them; the status is slow to count, which says
// nothing of whether ClickHouse answers (the query component's
// clickhouse check does).
func TestTimeoutMessagesFitTheRoute(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Timeout = time.Nanosecond })
	for _, tc := range []struct {
		path, want, not string
	}{
		{"/api/v1/meters/tokens/query", "did not answer in time", ""}, // at the meter's lookup, before the query
		{"/api/v1/dead_letters", "did not answer in time", "window_size"},
		{"/api/v1/customers", "did not answer in time", "window_size"},
		{"/api/v1/status", "clickhouse check", ""},
	} {
		code, body, _ := e.do("GET", tc.path, keyAcme, nil)
		if code != http.StatusServiceUnavailable || !strings.Contains(string(body), tc.want) ||
			(tc.not != "" && strings.Contains(string(body), tc.not)) {
			t.Errorf("GET %s with a 1ns timeout: %d %s; want 503 saying %q, not %q", tc.path, code, body, tc.want, tc.not)
		}
	}
}

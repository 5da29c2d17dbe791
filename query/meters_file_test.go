package query

import (
	"context"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meters.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLoadMetersFile: loading the same file again keeps every revision (and
// so the usage metered so far); a changed definition gets a new one.
func TestLoadMetersFile(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	store := meterstore.New(e.conn)
	const tokens = `{"key": "tokens", "event_type": "llm", "aggregation": "SUM", "value_property": "$.tokens"}`
	const calls = `{"key": "calls", "name": "Calls", "event_type": "api", "aggregation": "COUNT"}`
	path := writeFile(t, `{"acme": [`+tokens+`, `+calls+`], "globex": [`+calls+`]}`)
	if err := LoadMetersFile(ctx, store, path); err != nil {
		t.Fatal(err)
	}
	get := func(apiKey, meterKey string) schemas.Meter {
		t.Helper()
		var m schemas.Meter
		e.getJSON("/api/v1/meters/"+meterKey, apiKey, http.StatusOK, &m)
		return m
	}
	first := map[string]schemas.Meter{
		"acme/tokens": get(keyAcme, "tokens"), "acme/calls": get(keyAcme, "calls"), "globex/calls": get(keyGlobex, "calls"),
	}
	if first["acme/calls"].Revision == 0 || first["acme/calls"].Name != "Calls" {
		t.Fatalf("acme calls %+v", first["acme/calls"])
	}

	if err := LoadMetersFile(ctx, store, path); err != nil {
		t.Fatal(err)
	}
	if got := get(keyAcme, "tokens"); got.Revision != first["acme/tokens"].Revision {
		t.Errorf("unchanged meter got revision %d, had %d", got.Revision, first["acme/tokens"].Revision)
	}

	// tokens changes what it meters; calls only changes its name.
	changed := strings.Replace(tokens, "SUM", "MAX", 1)
	renamed := strings.Replace(calls, `"Calls"`, `"API calls"`, 1)
	if err := LoadMetersFile(ctx, store, writeFile(t, `{"acme": [`+changed+`, `+renamed+`]}`)); err != nil {
		t.Fatal(err)
	}
	if got := get(keyAcme, "tokens"); got.Revision == first["acme/tokens"].Revision || got.Aggregation != schemas.AggMax {
		t.Errorf("changed meter: revision %d (was %d), aggregation %s", got.Revision, first["acme/tokens"].Revision, got.Aggregation)
	}
	if got := get(keyAcme, "calls"); got.Revision != first["acme/calls"].Revision || got.Name != "API calls" {
		t.Errorf("renamed meter: revision %d (was %d), name %q", got.Revision, first["acme/calls"].Revision, got.Name)
	}
	if got := get(keyGlobex, "calls"); got.Revision != first["globex/calls"].Revision {
		t.Errorf("a meter absent from the file changed")
	}
}

// TestMetersFileErrors: a broken file names the organization, the meter's
// index and the field, and nothing of it is applied.
func TestMetersFileErrors(t *testing.T) {
	e := newEnv(t)
	store := meterstore.New(e.conn)
	const ok = `{"key": "calls", "event_type": "api", "aggregation": "COUNT"}`
	tests := []struct{ name, content, want string }{
		{"not JSON", `{"acme": [`, "must be a JSON object"},
		{"not an object", `[` + ok + `]`, "must be a JSON object"},
		{"bad organization", `{"Acme Inc": [` + ok + `]}`, `organization "Acme Inc" must match`},
		{"bad field", `{"acme": [` + ok + `, {"key": "x", "event_type": "t", "aggregation": "MEDIAN"}]}`,
			`organization "acme", meter [1]: aggregation: "MEDIAN" must be one of`},
		{"bad filter", `{"globex": [{"key": "x", "event_type": "t", "aggregation": "COUNT", "filter": {"s": {"eqq": 1}}}]}`,
			`organization "globex", meter [0]: filter.s.eqq: unknown operator`},
		{"duplicate key", `{"acme": [` + ok + `, ` + ok + `]}`, `organization "acme", meter [1]: key: "calls" is already defined by meter [0]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := LoadMetersFile(context.Background(), store, writeFile(t, tt.content))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if err := LoadMetersFile(context.Background(), store, filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing file was accepted")
	}
	if list, err := store.List(context.Background(), "acme"); err != nil || len(list) != 0 {
		t.Errorf("a broken file applied meters: %v %v", list, err)
	}
}

// TestServiceRun starts the service as cmd does: the meters file is applied
// before serving, readiness checks ClickHouse, metrics carry fixed route
// labels, and Run returns when its context ends.
func TestServiceRun(t *testing.T) {
	conn := testenv.MigratedDatabase(t)
	keys := &httpapi.Keys{}
	if err := keys.Add("acme", keyAcme); err != nil {
		t.Fatal(err)
	}
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"-query.listen-addr=127.0.0.1:0",
		"-query.meters-file=" + writeFile(t, `{"acme": [{"key": "calls", "event_type": "api", "aggregation": "COUNT"}]}`)}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	svc, err := New(cfg, Deps{ClickHouse: conn, Keys: keys, Registerer: reg, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()

	base := "http://" + svc.Addr()
	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+keyAcme)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/api/v1/meters/calls/query"); code != http.StatusOK || !strings.Contains(body, `"meter":"calls"`) {
		t.Errorf("meter from the file: %d %s", code, body)
	}
	if code, body := get("/readyz"); code != http.StatusOK || !strings.Contains(body, `"clickhouse":"ok"`) {
		t.Errorf("readyz: %d %s", code, body)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{
		`tally_query_http_requests_total{code="200",route="/api/v1/meters/{key}/query"} 1`,
		`tally_query_clickhouse_duration_seconds_count{operation="read_usage"} 1`,
		`tally_query_clickhouse_duration_seconds_count{operation="meters_get"} 1`,
		`tally_query_clickhouse_duration_seconds_count{operation="ping"} 1`,
		`tally_query_rows_returned_count 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestNewRejectsBadSetup(t *testing.T) {
	_, err := New(Config{MaxRows: 0, Timeout: time.Minute, MetersFile: writeFile(t, `{"acme": [{"key": "x"}]}`)}, Deps{})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"query.listen-addr", "query.max-rows", "query.timeout", "ClickHouse connection", "API key", `meter [0]: event_type`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

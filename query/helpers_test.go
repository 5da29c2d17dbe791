package query

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

// API keys of the two organizations every integration test has.
const (
	keyAcme   = "acme-key-0123456789"
	keyGlobex = "globex-key-0123456789"
)

// env is a query service on its own ClickHouse database, served by
// httptest.
type env struct {
	t       *testing.T
	conn    driver.Conn
	svc     *Service
	url     string
	reg     *prometheus.Registry
	started time.Time
}

func newEnv(t *testing.T, configure ...func(*Config)) *env {
	t.Helper()
	conn := testenv.MigratedDatabase(t)
	keys := &httpapi.Keys{}
	if err := keys.AddSpec("acme:" + keyAcme + ",globex:" + keyGlobex); err != nil {
		t.Fatal(err)
	}
	cfg := Config{ListenAddr: "127.0.0.1:0", MaxRows: DefaultMaxRows, Timeout: DefaultTimeout}
	for _, c := range configure {
		c(&cfg)
	}
	reg := prometheus.NewRegistry()
	svc, err := New(cfg, Deps{ClickHouse: conn, Keys: keys, Registerer: reg, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, conn: conn, svc: svc, url: srv.URL, reg: reg, started: time.Now()}
}

// sub returns the env for subtest t, so that its failures stop only t.
func (e *env) sub(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// do sends a request with the API key (none when key is "") and returns
// the status and body.
func (e *env) do(method, path, key string, body []byte, header ...string) (int, []byte, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, out, resp.Header
}

// getJSON GETs path and decodes the body into v, failing unless the
// status is want.
func (e *env) getJSON(path, key string, want int, v any) {
	e.t.Helper()
	code, body, _ := e.do("GET", path, key, nil)
	if code != want {
		e.t.Fatalf("GET %s: %d %s, want %d", path, code, body, want)
	}
	if v != nil {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(v); err != nil {
			e.t.Fatalf("GET %s: decode %s: %v", path, body, err)
		}
	}
}

// createMeter defines a meter through the API and returns it as stored.
func (e *env) createMeter(key, definition string) schemas.Meter {
	e.t.Helper()
	code, body, _ := e.do("POST", "/api/v1/meters", key, []byte(definition))
	if code != http.StatusCreated {
		e.t.Fatalf("create meter: %d %s", code, body)
	}
	var m schemas.Meter
	if err := json.Unmarshal(body, &m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

// reading is one row of the readings table, as the aggregator writes it:
// testenv.Reading with the field names the tests here use.
type reading struct {
	org, meter string
	revision   uint64
	customer   string
	eventID    string
	time       time.Time
	value      string // decimal text; "" is 0
	distinct   string
	groups     map[string]string
}

// insert writes readings in one insert with testenv.InsertReadings,
// exactly as the aggregator does. Calling it twice with the same readings
// is what a retried insert does.
func (e *env) insert(rows ...reading) {
	e.t.Helper()
	out := make([]testenv.Reading, len(rows))
	for i, r := range rows {
		out[i] = testenv.Reading{Org: r.org, Meter: r.meter, Revision: r.revision, Customer: r.customer, EventID: r.eventID,
			Time: r.time, Value: r.value, Distinct: r.distinct, Groups: r.groups}
	}
	testenv.InsertReadings(e.t, e.conn, out...)
}

// usageBodyJSON is the decoded body of a usage query.
type usageBodyJSON struct {
	Meter          string  `json:"meter"`
	From           string  `json:"from"`
	To             string  `json:"to"`
	WindowSize     *string `json:"window_size"`
	WindowTimeZone string  `json:"window_time_zone"`
	Data           []struct {
		WindowStart string            `json:"window_start"`
		WindowEnd   string            `json:"window_end"`
		CustomerID  *string           `json:"customer_id"`
		GroupBy     map[string]string `json:"group_by"`
		Value       json.Number       `json:"value"`
	} `json:"data"`
}

// query runs a usage query of meter as the organization of key.
func (e *env) query(key, meter, params string) usageBodyJSON {
	e.t.Helper()
	var u usageBodyJSON
	e.getJSON("/api/v1/meters/"+meter+"/query?"+params, key, http.StatusOK, &u)
	return u
}

// values returns "window_start|group values...|value" lines, which read
// well in failure messages.
func (u usageBodyJSON) lines(groupKeys ...string) []string {
	var out []string
	for _, d := range u.Data {
		line := d.WindowStart
		for _, k := range groupKeys {
			line += "|" + d.GroupBy[k]
		}
		out = append(out, line+"|"+d.Value.String())
	}
	return out
}

func wantLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// at parses an RFC 3339 time.
func at(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

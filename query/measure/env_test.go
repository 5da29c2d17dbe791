package measure

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/query/billing"
	"github.com/tally-oss/tally/query/usage"
	"github.com/tally-oss/tally/schemas"
)

// Integration tests share one private ClickHouse server per test binary;
// each test gets its own database.
func TestMain(m *testing.M) { testenv.Main(m) }

// API keys of the two organizations every integration test has.
const (
	keyAcme   = "acme-key-0123456789"
	keyGlobex = "globex-key-0123456789"
)

// env is the Measure route on its own ClickHouse database, served by
// httptest behind the same authentication the query service adds.
type env struct {
	t       *testing.T
	conn    driver.Conn
	meters  *meterstore.Store
	catalog *catalogstore.Store
	url     string

	mu    sync.Mutex
	shift time.Duration // added to the idempotency clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvRows(t, 10000)
}

// newEnvRows is newEnv with the row limit maxRows, given to the usage
// reader and to the Measure route as the query service gives
// query.max-rows to both.
func newEnvRows(t *testing.T, maxRows int) *env {
	t.Helper()
	conn := testenv.MigratedDatabase(t)
	e := &env{t: t, conn: conn, meters: meterstore.New(conn), catalog: catalogstore.New(conn)}
	usageSvc := usage.NewService(e.meters, usage.NewClickHouseReader(conn, maxRows, nil), meterstore.ErrNotFound)
	routes := Routes(Deps{
		Billing: billing.New(e.catalog, usageSvc, catalogstore.ErrNotFound, maxRows), Usage: usageSvc,
		Idempotency: e.catalog, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Timeout: 30 * time.Second, Now: e.now,
		MaxRows: maxRows,
	})
	srv := httptest.NewServer(testenv.RoutesMux(t, "acme:"+keyAcme+",globex:"+keyGlobex, routes))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

func (e *env) now() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return time.Now().Add(e.shift)
}

// advance moves the idempotency clock forward.
func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.shift += d
}

// post sends body to path as the organization of key (none when key is
// "") with extra headers as name, value pairs.
func (e *env) post(key, path, body string, header ...string) (int, []byte, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.url+path, bytes.NewReader([]byte(body)))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
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

// usageOK posts a request and decodes the 200 answer.
func (e *env) usageOK(key, path, body string) usageJSON {
	e.t.Helper()
	code, out, _ := e.post(key, path, body)
	if code != http.StatusOK {
		e.t.Fatalf("POST %s %s: %d %s", path, body, code, out)
	}
	return decodeUsage(e.t, out)
}

func (e *env) meter(orgID, definition string) schemas.Meter {
	e.t.Helper()
	m, err := schemas.ParseMeter([]byte(definition))
	if err != nil {
		e.t.Fatal(err)
	}
	if m, err = e.meters.Create(context.Background(), orgID, m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *env) plan(orgID string, p schemas.Plan) schemas.Plan {
	e.t.Helper()
	p, err := e.catalog.CreatePlan(context.Background(), orgID, p)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) customer(orgID string, c schemas.Customer) {
	e.t.Helper()
	if _, _, err := e.catalog.PutCustomer(context.Background(), orgID, c); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) subscription(orgID string, s schemas.Subscription) {
	e.t.Helper()
	if _, err := e.catalog.CreateSubscription(context.Background(), orgID, s); err != nil {
		e.t.Fatal(err)
	}
}

// reading is one row of the readings table, as the aggregator writes it.
type reading struct {
	org, meter string
	revision   uint64
	customer   string
	eventID    string
	time       string // RFC 3339
	value      string // decimal text
	groups     map[string]string
}

// insert writes readings with testenv.InsertReadings, exactly as the
// aggregator does.
func (e *env) insert(rows ...reading) {
	e.t.Helper()
	out := make([]testenv.Reading, len(rows))
	for i, r := range rows {
		at, err := time.Parse(time.RFC3339Nano, r.time)
		if err != nil {
			e.t.Fatal(err)
		}
		out[i] = testenv.Reading{Org: r.org, Meter: r.meter, Revision: r.revision, Customer: r.customer, EventID: r.eventID,
			Time: at, Value: r.value, Groups: r.groups}
	}
	testenv.InsertReadings(e.t, e.conn, out...)
}

// usageJSON is the part of a response the usage tests read.
type usageJSON struct {
	Metric struct {
		ID           string `json:"id"`
		MeteringRule struct {
			Aggregator string   `json:"aggregator"`
			GroupKeys  []string `json:"group_keys"`
			Property   string   `json:"property"`
			Rule       string   `json:"rule"`
		} `json:"metering_rule"`
	} `json:"metric"`
	ProductMetricPricing struct {
		ID string `json:"id"`
	} `json:"product_metric_pricing"`
	Usage []struct {
		Breakdown []struct {
			Breakout map[string]string `json:"breakout"`
			Grouping map[string]string `json:"grouping"`
			Period   periodJSON        `json:"period"`
			Value    json.Number       `json:"value"`
		} `json:"breakdown"`
		Period   periodJSON  `json:"period"`
		RecordID string      `json:"subscription_metric_record_id"`
		Value    json.Number `json:"value"`
	} `json:"usage"`
}

type periodJSON struct {
	StartDate string `json:"start_date"`
	EndDate   string `json:"end_date"`
}

func decodeUsage(t *testing.T, body []byte) usageJSON {
	t.Helper()
	var u usageJSON
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&u); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return u
}

// lines renders the usage as "start..end = value" per period, each
// followed by "  start..end group=value ... = value" per breakdown entry.
func (u usageJSON) lines() []string {
	var out []string
	for _, p := range u.Usage {
		out = append(out, p.Period.StartDate+".."+p.Period.EndDate+" = "+p.Value.String())
		for _, b := range p.Breakdown {
			line := "  " + b.Period.StartDate + ".." + b.Period.EndDate
			for _, k := range slices.Sorted(maps.Keys(b.Grouping)) {
				line += " " + k + "=" + b.Grouping[k]
			}
			out = append(out, line+" = "+b.Value.String())
		}
	}
	return out
}

func wantLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

package aggregator

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/shopspring/decimal"
)

// Reading what the aggregator wrote: ClickHouse rows, HTTP endpoints and
// metrics.

func (e *env) count(query string, args ...any) uint64 {
	e.t.Helper()
	var n uint64
	if err := e.conn.QueryRow(e.ctx, query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (e *env) decimal(query string, args ...any) decimal.Decimal {
	e.t.Helper()
	var d decimal.Decimal
	if err := e.conn.QueryRow(e.ctx, query, args...).Scan(&d); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return d
}

// reading is a readings row as the tests compare it.
type reading struct {
	Customer, EventID string
	Time              time.Time
	Value             string
	Distinct          string
	GroupKeys         []string
	GroupValues       []string
}

func (r reading) String() string {
	return fmt.Sprintf("%s/%s@%s value=%s distinct=%q groups=%v=%v",
		r.Customer, r.EventID, r.Time.Format(time.RFC3339), r.Value, r.Distinct, r.GroupKeys, r.GroupValues)
}

func (e *env) readings(meterKey string) []reading {
	e.t.Helper()
	rows, err := e.conn.Query(e.ctx, `SELECT customer_id, event_id, time, value, distinct_value, group_keys, group_values
		FROM readings FINAL WHERE org_id = ? AND meter_key = ? ORDER BY customer_id, event_id`, testOrg, meterKey)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []reading
	for rows.Next() {
		var r reading
		var v decimal.Decimal
		if err := rows.Scan(&r.Customer, &r.EventID, &r.Time, &v, &r.Distinct, &r.GroupKeys, &r.GroupValues); err != nil {
			e.t.Fatal(err)
		}
		r.Time = r.Time.UTC()
		r.Value = v.String()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func assertReadings(t testing.TB, got []reading, want ...reading) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d readings, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	for i := range want {
		if got[i].String() != want[i].String() {
			t.Errorf("reading %d:\n got %v\nwant %v", i, got[i], want[i])
		}
	}
}

// httpGet returns the status and body of a GET to the service.
func httpGet(t testing.TB, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue reads one sample from the registry; 0 if absent.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
metrics:
	for _, m := range metricFamily(t, reg, name).GetMetric() {
		for _, lp := range m.GetLabel() {
			if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
				continue metrics
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

// metricFamily gathers reg and returns the family name, or nil when it has
// no series.
func metricFamily(t testing.TB, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f
		}
	}
	return nil
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

package main

// End-to-end tests: events go in over HTTP, through the in-process Kafka
// broker, the aggregator and a real ClickHouse server, and usage comes out
// of the query API. Nothing is mocked.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

const wholeYear = "2026-01-01T00:00:00Z"

func yearParams(kv ...string) map[string][]string {
	return params(append([]string{"from", wholeYear, "to", "2027-01-01T00:00:00Z"}, kv...)...)
}

func TestPipelineEveryAggregation(t *testing.T) {
	p := startPipeline(t)
	ok := `"filter": {"status": {"eq": "ok"}}`
	group := `"group_by": {"model": "$.model"}`
	for _, m := range []string{
		`{"key": "sum", "event_type": "call", "aggregation": "SUM", "value_property": "$.usage.tokens", ` + group + `, ` + ok + `}`,
		`{"key": "count", "event_type": "call", "aggregation": "COUNT", ` + group + `, "filter": {"not": {"status": {"eq": "skip"}}}}`,
		`{"key": "max", "event_type": "call", "aggregation": "MAX", "value_property": "$.usage.tokens", ` + group + `, ` + ok + `}`,
		`{"key": "min", "event_type": "call", "aggregation": "MIN", "value_property": "$.usage.tokens", ` + group + `, ` + ok + `}`,
		`{"key": "avg", "event_type": "call", "aggregation": "AVG", "value_property": "$.usage.tokens", ` + group + `, ` + ok + `}`,
		`{"key": "users", "event_type": "call", "aggregation": "UNIQUE_COUNT", "value_property": "$.user", ` + group + `, ` + ok + `}`,
		`{"key": "latest", "event_type": "call", "aggregation": "LATEST", "value_property": "$.usage.tokens", ` + group + `, ` + ok + `}`,
	} {
		p.createMeter(acmeKey, m)
	}
	call := func(id, customer, at, model, status, user string, tokens any) map[string]any {
		return ev(id, "call", customer, at, map[string]any{"model": model, "status": status, "user": user, "usage": map[string]any{"tokens": tokens}})
	}
	p.postEvents(acmeKey,
		call("e1", "c1", "2026-03-02T10:00:00Z", "a", "ok", "u1", 10),
		call("e2", "c1", "2026-03-02T11:00:00Z", "a", "ok", "u2", 2.5),
		call("e3", "c1", "2026-03-02T09:00:00Z", "b", "ok", "u1", "7"),
	)
	p.postNDJSONGzip(acmeKey,
		call("e4", "c1", "2026-03-02T12:00:00Z", "a", "error", "u3", 100),
		call("e5", "c2", "2026-03-02T08:00:00Z", "a", "ok", "u1", 1),
		call("e6", "c2", "2026-03-02T13:00:00Z", "a", "skip", "u9", 50),
	)
	byCustomer := yearParams("group_by", "customer_id", "group_by", "model")
	for meter, want := range map[string][]string{
		"sum":    {"customer_id=c1 model=a => 12.5", "customer_id=c1 model=b => 7", "customer_id=c2 model=a => 1"},
		"count":  {"customer_id=c1 model=a => 3", "customer_id=c1 model=b => 1", "customer_id=c2 model=a => 1"},
		"max":    {"customer_id=c1 model=a => 10", "customer_id=c1 model=b => 7", "customer_id=c2 model=a => 1"},
		"min":    {"customer_id=c1 model=a => 2.5", "customer_id=c1 model=b => 7", "customer_id=c2 model=a => 1"},
		"avg":    {"customer_id=c1 model=a => 6.25", "customer_id=c1 model=b => 7", "customer_id=c2 model=a => 1"},
		"users":  {"customer_id=c1 model=a => 2", "customer_id=c1 model=b => 1", "customer_id=c2 model=a => 1"},
		"latest": {"customer_id=c1 model=a => 2.5", "customer_id=c1 model=b => 7", "customer_id=c2 model=a => 1"},
	} {
		p.waitUsage(acmeKey, meter, byCustomer, want...)
	}
	// Across customers: AVG, UNIQUE_COUNT and LATEST come from the events,
	// not from the per-customer results above.
	byModel := yearParams("group_by", "model")
	for meter, want := range map[string][]string{
		"sum":    {"model=a => 13.5", "model=b => 7"},
		"avg":    {"model=a => 4.5", "model=b => 7"},
		"users":  {"model=a => 2", "model=b => 1"},
		"latest": {"model=a => 2.5", "model=b => 7"},
	} {
		p.waitUsage(acmeKey, meter, byModel, want...)
	}
	p.waitUsage(acmeKey, "sum", yearParams("filter[model]", "b"), "=> 7")
	p.waitUsage(acmeKey, "sum", yearParams("customer_id", "c2"), "=> 1")
}

func TestPipelineCountsEachEventOnce(t *testing.T) {
	p := startPipeline(t)
	p.createMeter(acmeKey, `{"key": "tokens", "event_type": "call", "aggregation": "SUM", "value_property": "$.tokens"}`)
	p.createMeter(acmeKey, `{"key": "calls", "event_type": "call", "aggregation": "COUNT"}`)
	p.createMeter(acmeKey, `{"key": "others", "event_type": "other", "aggregation": "COUNT"}`)
	tok := func(id, typ, at string, n any) map[string]any {
		return ev(id, typ, "c1", at, map[string]any{"tokens": n})
	}
	first := []map[string]any{
		tok("d1", "call", "2026-03-02T10:00:00Z", 1),
		tok("d2", "call", "2026-03-02T10:00:00Z", 2),
		tok("d1", "call", "2026-03-02T10:00:00Z", 100), // again within the request, another value
	}
	p.postEvents(acmeKey, first...)
	p.postEvents(acmeKey,
		tok("d2", "call", "2026-05-02T10:00:00Z", 200), // again across requests, another value and month
		tok("d3", "call", "2026-03-02T10:00:00Z", 3),
	)
	p.postEvents(acmeKey, first...)                                      // the first request retried as a whole
	p.postEvents(acmeKey, tok("d3", "other", "", 1))                     // again with another type
	p.postEvents(acmeKey, tok("d4", "other", "2026-03-03T00:00:00Z", 1)) // a new event after all of them

	// d4 is in the same partition as the duplicates and after them: once it
	// is counted, every duplicate has been processed.
	p.waitUsage(acmeKey, "others", yearParams(), "=> 1")
	p.waitUsage(acmeKey, "tokens", yearParams(), "=> 6")
	p.waitUsage(acmeKey, "calls", yearParams("window_size", "MONTH"),
		"2026-03-01T00:00:00Z..2026-04-01T00:00:00Z => 3")
	if n := p.count("SELECT count() FROM readings FINAL WHERE meter_key = 'tokens'"); n != 3 {
		t.Errorf("readings of tokens = %d, want 3", n)
	}
	if n := p.count("SELECT count() FROM events FINAL"); n != 4 {
		t.Errorf("stored events = %d, want 4 (d1..d4)", n)
	}
	// d1 within the first request, d2 across requests, the retried first
	// request (3), d3 with another type.
	const metric = `tally_aggregator_events_total{outcome="duplicate"} 6`
	waitFor(t, func() bool { return strings.Contains(p.get(p.aggURL+"/metrics"), metric) }, func() string {
		return "want 6 duplicates in the aggregator metrics:\n" + grep(p.get(p.aggURL+"/metrics"), "tally_aggregator_events_total")
	})
}

func TestPipelineDecimalsAreExact(t *testing.T) {
	p := startPipeline(t)
	p.createMeter(acmeKey, `{"key": "gb", "event_type": "storage", "aggregation": "SUM", "value_property": "$.gb"}`)
	p.createMeter(acmeKey, `{"key": "gb-avg", "event_type": "storage", "aggregation": "AVG", "value_property": "$.gb"}`)
	const requests, perRequest = 10, 10000
	for r := range requests {
		batch := make([]map[string]any, perRequest)
		for i := range batch {
			batch[i] = ev(fmt.Sprintf("s-%d-%d", r, i), "storage", fmt.Sprintf("c%d", i%10), "2026-03-02T10:00:00Z", map[string]any{"gb": 0.1})
		}
		p.postEvents(acmeKey, batch...)
	}
	// 100,000 x 0.1: a float64 sum would be 10000.000000018848.
	p.waitUsage(acmeKey, "gb", yearParams(), "=> 10000")
	p.waitUsage(acmeKey, "gb-avg", yearParams(), "=> 0.1")
	p.waitUsage(acmeKey, "gb", yearParams("customer_id", "c3"), "=> 1000")
}

func TestPipelineAggregatorRestartMidStream(t *testing.T) {
	p := startPipeline(t, "-aggregator.batch-size=100")
	p.createMeter(acmeKey, `{"key": "req", "event_type": "req", "aggregation": "SUM", "value_property": "$.n"}`)
	const requests, perRequest = 30, 200
	var wg sync.WaitGroup
	wg.Add(1)
	half := make(chan struct{})
	go func() {
		defer wg.Done()
		for r := range requests {
			if r == requests/2 {
				close(half)
			}
			batch := make([]map[string]any, perRequest)
			for i := range batch {
				batch[i] = ev(fmt.Sprintf("r-%d-%d", r, i), "req", fmt.Sprintf("c%d", i%17), "2026-03-02T10:00:00Z", map[string]any{"n": 1.01})
			}
			p.postEvents(acmeKey, batch...)
		}
	}()
	<-half
	p.stopAgg() // drains or abandons its in-flight batches
	stored := p.count("SELECT count() FROM readings FINAL")
	p.startAggregator()
	wg.Wait()
	p.waitUsage(acmeKey, "req", yearParams(), "=> 6060") // 6000 x 1.01
	if n := p.count("SELECT count() FROM readings FINAL"); n != requests*perRequest {
		t.Errorf("readings = %d, want %d", n, requests*perRequest)
	}
	t.Logf("%d of %d events were stored before the restart", stored, requests*perRequest)
}

func TestPipelineWindowsInTimeZones(t *testing.T) {
	p := startPipeline(t)
	p.createMeter(acmeKey, `{"key": "n", "event_type": "tz", "aggregation": "COUNT"}`)
	p.postEvents(acmeKey,
		ev("t1", "tz", "c1", "2026-02-28T23:30:00-05:00", nil), // New York: February; UTC: March
		ev("t2", "tz", "c1", "2026-03-01T00:30:00-05:00", nil),
		ev("t3", "tz", "c1", "2026-03-08T00:30:00-05:00", nil), // the day clocks go forward: 23 hours
		ev("t4", "tz", "c1", "2026-03-08T23:30:00-04:00", nil), // same New York day, next UTC day
		ev("t5", "tz", "c1", "2026-03-09T00:30:00-04:00", nil),
	)
	p.waitUsage(acmeKey, "n", params("from", "2026-02-28T00:00:00-05:00", "to", "2026-03-10T00:00:00-04:00",
		"window_size", "DAY", "window_time_zone", "America/New_York"),
		"2026-02-28T00:00:00-05:00..2026-03-01T00:00:00-05:00 => 1",
		"2026-03-01T00:00:00-05:00..2026-03-02T00:00:00-05:00 => 1",
		"2026-03-08T00:00:00-05:00..2026-03-09T00:00:00-04:00 => 2",
		"2026-03-09T00:00:00-04:00..2026-03-10T00:00:00-04:00 => 1")
	p.waitUsage(acmeKey, "n", params("from", "2026-02-01T00:00:00-05:00", "to", "2026-04-01T00:00:00-04:00",
		"window_size", "MONTH", "window_time_zone", "America/New_York"),
		"2026-02-01T00:00:00-05:00..2026-03-01T00:00:00-05:00 => 1",
		"2026-03-01T00:00:00-05:00..2026-04-01T00:00:00-04:00 => 4")
	p.waitUsage(acmeKey, "n", params("from", "2026-02-01T00:00:00Z", "to", "2026-04-01T00:00:00Z", "window_size", "MONTH"),
		"2026-03-01T00:00:00Z..2026-04-01T00:00:00Z => 5")
}

func TestPipelineDeadLetters(t *testing.T) {
	p := startPipeline(t)
	p.createMeter(acmeKey, `{"key": "tokens", "event_type": "call", "aggregation": "SUM", "value_property": "$.tokens"}`)
	p.postEvents(acmeKey,
		ev("good", "call", "c1", "2026-03-02T10:00:00Z", map[string]any{"tokens": 5}),
		ev("missing", "call", "c1", "2026-03-02T10:00:00Z", map[string]any{"other": 1}),
		ev("text", "call", "c1", "2026-03-02T10:00:00Z", map[string]any{"tokens": "many"}),
		ev("precise", "call", "c1", "2026-03-02T10:00:00Z", map[string]any{"tokens": "0.0000000000001"}),
		ev("good2", "call", "c1", "2026-03-02T10:00:00Z", map[string]any{"tokens": 6}),
	)
	p.waitUsage(acmeKey, "tokens", yearParams(), "=> 11")
	// Readings and dead letters of a batch are separate inserts: wait for
	// the batch's commit, which follows both.
	want := "missing:value_missing precise:value_too_precise text:value_not_number"
	waitFor(t, func() bool { return strings.Join(p.deadLetters(), " ") == want }, func() string {
		return fmt.Sprintf("dead letters = %v, want %s", p.deadLetters(), want)
	})
	const metric = `tally_aggregator_dead_letters_total{reason="value_not_number"} 1`
	waitFor(t, func() bool { return strings.Contains(p.get(p.aggURL+"/metrics"), metric) }, func() string {
		return "dead letter metric missing:\n" + grep(p.get(p.aggURL+"/metrics"), "dead_letters")
	})
}

func TestPipelineAuthAndIsolation(t *testing.T) {
	p := startPipeline(t)
	p.createMeter(acmeKey, `{"key": "calls", "event_type": "call", "aggregation": "COUNT"}`)
	p.postEvents(acmeKey, ev("a1", "call", "shared-customer", "2026-03-02T10:00:00Z", nil))
	p.waitUsage(acmeKey, "calls", yearParams(), "=> 1")

	event := []byte(`{"id": "x", "type": "call", "customer_id": "c"}`)
	for _, key := range []string{"", "not-a-key-0123456789"} {
		if code, _ := p.do("POST", p.ingestURL+"/api/v1/events", key, "application/json", event); code != http.StatusUnauthorized {
			t.Errorf("ingest with key %q: %d, want 401", key, code)
		}
		if code, _ := p.do("GET", p.queryURL+"/api/v1/meters", key, "", nil); code != http.StatusUnauthorized {
			t.Errorf("meters with key %q: %d, want 401", key, code)
		}
	}
	// globex cannot see acme's meter, even when it asks for acme.
	if code, _ := p.do("GET", p.queryURL+"/api/v1/meters/calls/query?org_id=acme", globexKey, "", nil, "X-Org-Id", "acme"); code != http.StatusNotFound {
		t.Errorf("globex reading acme's meter: %d, want 404", code)
	}
	// globex's meter of the same key and type sees only globex's events,
	// even for a customer id both organizations use.
	p.createMeter(globexKey, `{"key": "calls", "event_type": "call", "aggregation": "COUNT"}`)
	p.postEvents(globexKey, ev("g1", "call", "shared-customer", "2026-03-02T10:00:00Z", nil),
		ev("a1", "call", "shared-customer", "2026-03-02T10:00:00Z", nil)) // acme's id: another identity in globex
	p.waitUsage(globexKey, "calls", yearParams("group_by", "customer_id"), "customer_id=shared-customer => 2")
	p.waitUsage(acmeKey, "calls", yearParams("group_by", "customer_id"), "customer_id=shared-customer => 1")
}

// deadLetters returns "event_id:reason" of acme's dead letters.
func (p *pipeline) deadLetters() []string {
	p.t.Helper()
	rows, err := p.conn.Query(context.Background(), "SELECT event_id, reason, message FROM dead_letters FINAL WHERE org_id = 'acme' ORDER BY event_id")
	if err != nil {
		p.t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var id, reason, message string
		if err := rows.Scan(&id, &reason, &message); err != nil {
			p.t.Fatal(err)
		}
		if message == "" {
			p.t.Errorf("dead letter %s has no message", id)
		}
		got = append(got, id+":"+reason)
	}
	return got
}

func (p *pipeline) get(url string) string {
	p.t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(text, substr string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestPipelineStatusComponents: wired as `tally all` wires it, the status
// reports every component of the pipeline with its checks: query, ingest
// and the aggregator ready (the aggregator once it holds partitions). An
// aggregator stopped is unreachable there, without turning the status into
// a 503, and ready again once restarted on its port.
func TestPipelineStatusComponents(t *testing.T) {
	p := startPipeline(t)
	components := func() string {
		var s struct {
			Components json.RawMessage `json:"components"`
		}
		if err := json.Unmarshal(p.mustAPI(globexKey, "GET", "/api/v1/status", "", http.StatusOK), &s); err != nil {
			t.Fatal(err)
		}
		return string(s.Components)
	}
	const (
		query   = `{"name":"query","ready":true,"checks":{"clickhouse":"ok"},"error":""}`
		ingest  = `{"name":"ingest","ready":true,"checks":{"kafka":"ok"},"error":""}`
		ready   = `{"name":"aggregator","ready":true,"checks":{"clickhouse":"ok","consumer":"ok","kafka":"ok"},"error":""}`
		stopped = `{"name":"aggregator","ready":false,"checks":{},"error":"unreachable"}`
	)
	wait := func(aggregator string) {
		t.Helper()
		want := "[" + query + "," + ingest + "," + aggregator + "]"
		waitFor(t, func() bool { return components() == want }, func() string {
			return "status components:\n got " + components() + "\nwant " + want
		})
	}
	wait(ready)
	p.stopAgg()
	wait(stopped)
	p.startAggregator()
	wait(ready)
}

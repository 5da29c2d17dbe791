package aggregator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/schemas"
)

// TestRestartMidStream stops the aggregator after some commits and starts
// another on the same group: every event is stored and metered exactly once.
func TestRestartMidStream(t *testing.T) {
	e := newEnv(t, 4)
	e.createMeter(testOrg, `{"key":"gb","event_type":"storage","aggregation":"SUM","value_property":"gb"}`)
	e.createMeter(testOrg, `{"key":"calls","event_type":"storage","aggregation":"COUNT"}`)
	const first, second = 20_000, 5_000
	produce := func(from, n int) {
		recs := make([]schemas.Record, n)
		for i := range recs {
			id := from + i
			recs[i] = event(fmt.Sprintf("c%d", id%97), fmt.Sprintf("e%d", id), "storage", t0, `{"gb":0.001}`)
		}
		e.produce(recs...)
	}
	produce(0, first)

	cfg := withGroup(testConfig(), t)
	cfg.BatchSize = 100 // many commits, so the stop lands mid-stream
	run := e.start(cfg)
	e.waitFor("a first commit", func() bool { return e.committed(cfg.GroupID) > 0 })
	run.shutdown(t)
	stoppedAt := e.committed(cfg.GroupID)
	t.Logf("stopped after %d of %d records committed", stoppedAt, first)

	produce(first, second) // arrives while no aggregator runs
	cfg.BatchSize = 2000   // the rest in fewer batches, to keep the test short
	e.start(cfg)
	e.waitCommitted(cfg.GroupID)

	const total = first + second
	if n := e.count(`SELECT count() FROM events FINAL`); n != total {
		t.Errorf("events: %d, want %d", n, total)
	}
	if n := e.count(`SELECT count() FROM readings FINAL WHERE meter_key = 'calls'`); n != total {
		t.Errorf("calls readings: %d, want %d", n, total)
	}
	if got := e.decimal(`SELECT sum(value) FROM readings FINAL WHERE meter_key = 'gb'`); got.String() != "25" {
		t.Errorf("gb sum = %s, want exactly 25", got)
	}
}

// TestRedeliveryAfterCrashBetweenInserts stores a batch's events the way
// an aggregator that crashed after step 4 would have, then runs the
// aggregator: the redelivered records are processed again and produce
// their readings, while a record whose identity is stored at another
// position stays a duplicate.
func TestRedeliveryAfterCrashBetweenInserts(t *testing.T) {
	e := newEnv(t, 1)
	e.createMeter(testOrg, `{"key":"tokens","event_type":"api_call","aggregation":"SUM","value_property":"tokens"}`)
	recs := []schemas.Record{
		event("c1", "a", "api_call", t0, `{"tokens":1}`),
		event("c1", "b", "api_call", t0, `{"tokens":2}`),
		event("c2", "c", "api_call", t0, `{"tokens":3}`),
		event("c2", "d", "api_call", t0, `{"tokens":4}`),
	}
	e.produce(recs...)

	// The crashed attempt stored a, b and c at their offsets 0-2. Event d
	// was stored at offset 99 by an earlier version: offset 3 is a
	// duplicate of it.
	var rows []EventRow
	for i, r := range recs {
		offset := int64(i)
		if r.Event.ID == "d" {
			offset = 99
		}
		rows = append(rows, EventRow{
			EventKey: EventKey{OrgID: r.OrgID, CustomerID: r.Event.CustomerID, ID: r.Event.ID},
			Type:     r.Event.Type, Time: r.Event.Time, Properties: string(r.Event.Properties),
			IngestedAt: r.IngestedAt, Position: Position{Partition: 0, Offset: offset},
		})
	}
	store := &clickhouseStore{conn: e.conn, metrics: newMetrics(nil)}
	if err := store.InsertEvents(e.ctx, rows); err != nil {
		t.Fatal(err)
	}

	cfg := withGroup(testConfig(), t)
	// The backfill would meter d's stored version, as the aggregator that
	// stored it at offset 99 did; this test is about the live path.
	cfg.Backfill = false
	run := e.start(cfg)
	e.waitCommitted(groupID(t))
	sec := t0.Truncate(time.Second)
	assertReadings(t, e.readings("tokens"),
		reading{Customer: "c1", EventID: "a", Time: sec, Value: "1", GroupKeys: []string{}, GroupValues: []string{}},
		reading{Customer: "c1", EventID: "b", Time: sec, Value: "2", GroupKeys: []string{}, GroupValues: []string{}},
		reading{Customer: "c2", EventID: "c", Time: sec, Value: "3", GroupKeys: []string{}, GroupValues: []string{}},
	)
	if n := e.count(`SELECT count() FROM events FINAL`); n != 4 {
		t.Errorf("events: %d, want 4 (the redelivered rows fold)", n)
	}
	if got := metricValue(t, run.reg, "tally_aggregator_events_total", map[string]string{"outcome": outcomeDuplicate}); got != 1 {
		t.Errorf("duplicates = %v, want 1", got)
	}
}

// TestClickHouseUnavailable cuts ClickHouse off mid-stream: nothing is
// committed while it is away, readiness says so, and once it is back
// every event lands exactly once.
func TestClickHouseUnavailable(t *testing.T) {
	e := newEnv(t, 2)
	e.createMeter(testOrg, `{"key":"gb","event_type":"storage","aggregation":"SUM","value_property":"gb"}`)
	proxy, conn := e.proxiedClickHouse()

	batch := func(from int) []schemas.Record {
		recs := make([]schemas.Record, 500)
		for i := range recs {
			recs[i] = event(fmt.Sprintf("c%d", i%13), fmt.Sprintf("e%d", from+i), "storage", t0, `{"gb":0.5}`)
		}
		return recs
	}
	e.produce(batch(0)...)
	cfg := withGroup(testConfig(), t)
	cfg.StallTimeout = time.Second
	run := e.startWith(cfg, Deps{ClickHouse: conn}) // meters are read through the proxy too
	e.waitCommitted(cfg.GroupID)
	e.waitFor("readiness 200", func() bool { code, _ := httpGet(t, run.svc.Addr(), "/readyz"); return code == 200 })

	proxy.SetUp(false)
	e.produce(batch(500)...)
	e.waitFor("retries", func() bool {
		return metricValue(t, run.reg, "tally_aggregator_retries_total", map[string]string{"operation": opLookupEvents}) > 0
	})
	var body string
	e.waitFor("readiness 503 naming clickhouse and the stall", func() bool {
		var code int
		code, body = httpGet(t, run.svc.Addr(), "/readyz")
		return code == 503 && strings.Contains(body, `"clickhouse":"`) && strings.Contains(body, "stalled")
	})
	t.Logf("readiness while ClickHouse is away: %s", body)
	if got := e.committed(cfg.GroupID); got != 500 {
		t.Errorf("committed %d while ClickHouse was away, want 500", got)
	}

	proxy.SetUp(true)
	e.waitCommitted(cfg.GroupID)
	if n := e.count(`SELECT count() FROM readings FINAL`); n != 1000 {
		t.Errorf("readings: %d, want 1000", n)
	}
	if got := e.decimal(`SELECT sum(value) FROM readings FINAL`); got.String() != "500" {
		t.Errorf("sum = %s, want exactly 500", got)
	}
	e.waitFor("readiness 200 again", func() bool { code, _ := httpGet(t, run.svc.Addr(), "/readyz"); return code == 200 })
}

// TestShutdownWhileClickHouseIsAway stops an aggregator whose batch is
// retrying against an unreachable ClickHouse: Run returns after the drain
// timeout with nothing committed, and the next aggregator stores it all
// exactly once.
func TestShutdownWhileClickHouseIsAway(t *testing.T) {
	e := newEnv(t, 1)
	e.createMeter(testOrg, `{"key":"calls","event_type":"api_call","aggregation":"COUNT"}`)
	proxy, conn := e.proxiedClickHouse()
	cfg := withGroup(testConfig(), t)
	cfg.DrainTimeout = 200 * time.Millisecond
	stuck := e.startWith(cfg, Deps{ClickHouse: conn})
	// Consumption starts once the topic's partition count is verified in
	// ClickHouse (partitions.go); then ClickHouse goes away.
	e.waitFor("readiness 200", func() bool { code, _ := httpGet(t, stuck.svc.Addr(), "/readyz"); return code == 200 })
	proxy.SetUp(false)
	recs := make([]schemas.Record, 100)
	for i := range recs {
		recs[i] = event("c1", fmt.Sprintf("e%d", i), "api_call", t0, `{}`)
	}
	e.produce(recs...)
	e.waitFor("retries", func() bool {
		return metricValue(t, stuck.reg, "tally_aggregator_retries_total", map[string]string{"operation": opLookupEvents}) > 0
	})
	stuck.shutdown(t) // returns: the stuck batch is abandoned after the drain timeout
	if got := e.committed(cfg.GroupID); got > 0 {
		t.Fatalf("committed %d records that never reached ClickHouse", got)
	}

	proxy.SetUp(true)
	e.startWith(cfg, Deps{ClickHouse: conn})
	e.waitCommitted(cfg.GroupID)
	if n := e.count(`SELECT count() FROM readings FINAL`); n != 100 {
		t.Errorf("readings: %d, want 100", n)
	}
}

// proxiedClickHouse returns a connection to the test database through a
// proxy that can cut ClickHouse off.
func (e *env) proxiedClickHouse() (*proxy, driver.Conn) {
	e.t.Helper()
	p := newProxy(e.t, e.addr)
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{p.Addr()}, Protocol: clickhouse.Native,
		Auth:        clickhouse.Auth{Database: e.db, Username: "default"},
		DialTimeout: time.Second, ReadTimeout: 5 * time.Second,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = conn.Close() })
	return p, conn
}

package aggregator

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-oss/tally/schemas"
)

// TestSystemicInsertErrorIsNotParked (review 6, F2): IsDataError classifies by
// error kind (an AppendRow conversion error, or one of a list of codes),
// not by whether the error is about particular rows. When an insert fails
// the same way for every row, because of the table rather than the rows
// (here: a column whose type drifted, as in a rolling upgrade whose
// migration changed it, or an operator's ALTER), writeOrPark bisects down
// to single rows, parks every one, dead-letters every event as
// unwritable and commits: the whole stream is dropped from metering
// instead of the partition stalling visibly until the table is fixed.
func TestSystemicInsertErrorIsNotParked(t *testing.T) {
	e := newEnv(t, 1)
	e.createMeter(testOrg, `{"key":"calls","event_type":"api_call","aggregation":"COUNT"}`)
	if err := e.conn.Exec(e.ctx, "ALTER TABLE events MODIFY COLUMN kafka_partition String"); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		e.produce(event(fmt.Sprintf("c%d", i), fmt.Sprintf("e%d", i), "api_call", t0, `{}`))
	}
	cfg := withGroup(testConfig(), t)
	r := e.start(cfg)
	waitSystemicOrCommitted(t, e, r, cfg.GroupID, tableEvents, 8)
	if got := e.committed(cfg.GroupID); got == 8 {
		unwritable := e.count("SELECT count() FROM dead_letters WHERE reason = 'unwritable'")
		t.Fatalf("every one of 8 events failed the same way (the table, not the rows), yet all were parked and committed: "+
			"%d unwritable dead letters, %d events stored, %d readings; parked metric %v",
			unwritable, e.count("SELECT count() FROM events"), len(e.readings("calls")),
			metricValue(t, r.reg, "tally_aggregator_parked_records_total", map[string]string{"reason": parkedEvent}))
	}
}

// TestSystemicReadingsErrorIsNotParked: the same for the readings table,
// which is worse: the events are stored, so every later version (a
// client's re-send) is a duplicate, and the readings are gone from usage
// with no backfill to recompute them (the meter revision's backfill is
// done).
func TestSystemicReadingsErrorIsNotParked(t *testing.T) {
	e := newEnv(t, 1)
	e.createMeter(testOrg, `{"key":"calls","event_type":"api_call","aggregation":"COUNT"}`)
	cfg := withGroup(testConfig(), t)
	r := e.start(cfg)
	e.produce(event("c0", "warm", "api_call", t0, `{}`))
	e.waitCommitted(cfg.GroupID)
	if err := e.conn.Exec(e.ctx, "ALTER TABLE readings MODIFY COLUMN time_ns String"); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		e.produce(event(fmt.Sprintf("c%d", i), fmt.Sprintf("e%d", i), "api_call", t0, `{}`))
	}
	waitSystemicOrCommitted(t, e, r, cfg.GroupID, tableReadings, 9)
	if got := e.committed(cfg.GroupID); got == 9 {
		t.Fatalf("every reading failed the same way (the table, not the rows), yet all were parked and committed: "+
			"%d events stored, %d unwritable dead letters; parked metric %v",
			e.count("SELECT count() FROM events"), e.count("SELECT count() FROM dead_letters WHERE reason = 'unwritable'"),
			metricValue(t, r.reg, "tally_aggregator_parked_records_total", map[string]string{"reason": parkedReading}))
	}
}

// waitSystemicOrCommitted waits until the group committed n records, or
// the insert into table was found systemic twice (the partition then
// waits for the table, which the caller checks).
func waitSystemicOrCommitted(t *testing.T, e *env, r *running, group, table string, n int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // a guard, not a timing assertion
	for e.committed(group) < n && metricValue(t, r.reg, "tally_aggregator_systemic_write_failures_total",
		map[string]string{"operation": "insert_" + table}) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("neither committed %d records nor found the insert into %s systemic", n, table)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOnePoisonRowAloneIsParked: a batch of one event whose row the table
// refuses (a data error) has no other row to show that the table takes
// rows; the canary shows it, so the row is parked and the batch
// completes: one bad record never stops a partition.
func TestOnePoisonRowAloneIsParked(t *testing.T) {
	store := &refusingStore{flaked: map[string]bool{}, refuse: func(table, id, _ string) bool {
		return table == tableEvents && id == "poison"
	}}
	p, reg := parkingProcessor(t, store)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second) // a guard, not a timing assertion
	defer cancel()
	if _, err := p.process(ctx, messagesOf(t, event("c1", "poison", "api_call", t0, `{}`))); err != nil {
		t.Fatalf("process: %v", err)
	}
	if got := metricValue(t, reg, "tally_aggregator_parked_records_total", map[string]string{"reason": parkedEvent}); got != 1 {
		t.Errorf("parked events = %v, want 1", got)
	}
	for _, ev := range store.events {
		if ev.OrgID != canaryOrg {
			t.Errorf("stored %+v, want only the canary", ev.EventKey)
		}
	}
	if len(store.deadLetters) != 1 || store.deadLetters[0].Reason != schemas.ReasonUnwritable {
		t.Errorf("dead letters %+v, want the poison event's, unwritable", store.deadLetters)
	}
}

// TestSystemicFailureWaitsForTheFix: while the readings table refuses
// every row, the canary included, nothing is parked and the batch waits;
// once the table is fixed, the same batch writes every reading.
func TestSystemicFailureWaitsForTheFix(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	store := &refusingStore{flaked: map[string]bool{}, refuse: func(table, _, _ string) bool {
		return table == tableReadings && broken.Load()
	}}
	p, reg := parkingProcessor(t, store)
	go func() {
		for metricValue(t, reg, "tally_aggregator_systemic_write_failures_total",
			map[string]string{"operation": "insert_" + tableReadings}) < 2 {
			time.Sleep(10 * time.Millisecond)
		}
		broken.Store(false) // the operator fixes the table
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second) // a guard, not a timing assertion
	defer cancel()
	var recs []schemas.Record
	for i := range 8 {
		recs = append(recs, event("c1", fmt.Sprintf("e%d", i), "api_call", t0, `{}`))
	}
	res, err := p.process(ctx, messagesOf(t, recs...))
	if err != nil {
		t.Fatalf("process: %v", err)
	}
	if got := metricValue(t, reg, "tally_aggregator_parked_records_total", map[string]string{"reason": parkedReading}); got != 0 {
		t.Errorf("parked readings = %v, want 0", got)
	}
	readings := 0
	for _, r := range store.readings {
		if r.OrgID == testOrg {
			readings++
		}
	}
	if readings != 8 || res.outcomes[outcomeMetered] != 8 || len(store.deadLetters) != 0 {
		t.Errorf("%d readings, %d metered, %d dead letters; want 8, 8, 0", readings, res.outcomes[outcomeMetered], len(store.deadLetters))
	}
}

func parkingProcessor(t *testing.T, store Store) (*processor, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	retry := retrier{initial: time.Millisecond, max: 10 * time.Millisecond, logger: testLogger()}
	meters := fixedMeters{testOrg: {mustParseMeter(t, `{"key":"calls","event_type":"api_call","aggregation":"COUNT"}`)}}
	return &processor{
		store:     &retryingStore{next: store, retry: retry, metrics: m},
		meters:    &retryingMeters{next: meters, retry: retry, metrics: m},
		publisher: &retryingPublisher{next: &refusingTopic{refuse: func(DeadLetterRow) bool { return false }}, retry: retry, metrics: m},
		now:       time.Now,
	}, reg
}

// TestParkedReadingIsRecomputedAfterTheFix: a reading the table refuses
// for a reason about its row (here a distinct value longer than a column
// narrowed by hand) is parked while its event is stored, so a re-send
// would be a duplicate. Once the column is fixed, a restarted aggregator
// backfills the meter's revision again and the reading is there.
// (Before the fix: the revision's backfill had completed, so the reading
// was never recomputed.)
func TestParkedReadingIsRecomputedAfterTheFix(t *testing.T) {
	e := newEnv(t, 1)
	e.createMeter(testOrg, `{"key":"users","event_type":"login","aggregation":"UNIQUE_COUNT","value_property":"user"}`)
	cfg := withGroup(testConfig(), t)
	r := e.start(cfg)
	e.produce(event("c0", "warm", "login", t0, `{"user":"ann"}`))
	e.waitCommitted(cfg.GroupID)
	e.waitFor("the meter's backfill", func() bool {
		return e.count(`SELECT count() FROM meter_backfills FINAL WHERE org_id = ?`, testOrg) == 1
	})
	// The tables that readings feeds in the same INSERT (materialized
	// views to readings_by_day, ...) change with it, or every insert into
	// readings would fail, which is not a row's fault.
	tables := readingsTables(t, e)
	for _, table := range tables {
		if err := e.conn.Exec(e.ctx, "ALTER TABLE "+table+" MODIFY COLUMN distinct_value FixedString(8)"); err != nil {
			t.Fatal(err)
		}
	}
	e.produce(event("c0", "short", "login", t0, `{"user":"bob"}`), event("c0", "long", "login", t0, `{"user":"a-user-name-too-long"}`))
	e.waitCommitted(cfg.GroupID)
	if n := e.count(`SELECT count() FROM dead_letters FINAL WHERE event_id = 'long' AND meter_key = 'users' AND reason = ?`,
		schemas.ReasonUnwritable); n != 1 {
		t.Fatalf("unwritable dead letters of the long reading: %d, want 1", n)
	}
	if got := metricValue(t, r.reg, "tally_aggregator_parked_records_total", map[string]string{"reason": parkedReading}); got != 1 {
		t.Errorf("parked readings = %v, want 1", got)
	}
	r.shutdown(t)

	for _, table := range tables {
		if err := e.conn.Exec(e.ctx, "ALTER TABLE "+table+" MODIFY COLUMN distinct_value String"); err != nil {
			t.Fatal(err)
		}
	}
	e.start(cfg)
	e.waitFor("the parked reading to be recomputed", func() bool {
		return e.count(`SELECT count() FROM readings FINAL WHERE meter_key = 'users' AND event_id = 'long'`) == 1
	})
	if n := e.count(`SELECT count() FROM readings FINAL WHERE meter_key = 'users'`); n != 3 {
		t.Errorf("readings of users: %d, want 3", n)
	}
}

// readingsTables lists readings and the tables of the test database that
// have its distinct_value column (those materialized views of readings
// write to), targets first.
func readingsTables(t *testing.T, e *env) []string {
	t.Helper()
	rows, err := e.conn.Query(e.ctx, `SELECT table FROM system.columns
		WHERE database = currentDatabase() AND name = 'distinct_value' AND table != 'readings'
		AND table IN (SELECT name FROM system.tables WHERE database = currentDatabase() AND engine LIKE '%MergeTree')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return append(tables, "readings")
}

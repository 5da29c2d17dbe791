package aggregator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/schemas"
)

// t0 has nanoseconds so that truncation to the second and time_ns are both
// visible.
var t0 = time.Date(2026, 1, 15, 10, 20, 30, 123456789, time.UTC)

func groupID(t testing.TB) string {
	return "aggregator-" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
}

// TestAggregations runs every aggregation, with group_by and a filter,
// and checks the readings row by row.
func TestAggregations(t *testing.T) {
	e := newEnv(t, 2)
	e.createMeter(testOrg, `{"key":"calls","event_type":"api_call","aggregation":"COUNT",
		"group_by":{"route":"$.route"},"filter":{"status":{"lt":500}}}`)
	e.createMeter(testOrg, `{"key":"tokens","event_type":"api_call","aggregation":"SUM",
		"value_property":"$.usage.tokens","group_by":{"model":"$.model"}}`)
	e.createMeter(testOrg, `{"key":"latency-max","event_type":"api_call","aggregation":"MAX","value_property":"latency"}`)
	e.createMeter(testOrg, `{"key":"latency-min","event_type":"api_call","aggregation":"MIN","value_property":"latency"}`)
	e.createMeter(testOrg, `{"key":"latency-avg","event_type":"api_call","aggregation":"AVG","value_property":"latency"}`)
	e.createMeter(testOrg, `{"key":"users","event_type":"api_call","aggregation":"UNIQUE_COUNT","value_property":"user"}`)
	e.createMeter(testOrg, `{"key":"seats","event_type":"seats","aggregation":"LATEST","value_property":"seats",
		"group_by":{"plan":"$.plan.name","tier":"$.plan.tier"}}`)
	// Same key and type in another organization: never applied to acme's events.
	e.createMeter("other", `{"key":"calls","event_type":"api_call","aggregation":"COUNT"}`)

	e.produce(
		event("c1", "e1", "api_call", t0, `{"route":"/a","status":200,"usage":{"tokens":"12.5"},"model":"gpt","latency":0.25,"user":"u1"}`),
		event("c1", "e2", "api_call", t0.Add(1500*time.Millisecond), `{"route":"/b","status":503,"usage":{"tokens":7},"model":"claude","latency":1.75,"user":"u2"}`),
		event("c2", "e3", "api_call", t0.Add(2*time.Second), `{"route":"/a","status":201,"usage":{"tokens":0.001},"latency":3,"user":1.50}`),
		event("c2", "e4", "seats", t0, `{"seats":5,"plan":{"name":"team","tier":2}}`),
		event("c1", "e5", "page_view", t0, `{"route":"/a"}`),
	)
	run := e.start(withGroup(testConfig(), t))
	e.waitCommitted(groupID(t))

	sec := func(d time.Duration) time.Time { return t0.Add(d).Truncate(time.Second) }
	assertReadings(t, e.readings("calls"),
		reading{Customer: "c1", EventID: "e1", Time: sec(0), Value: "1", GroupKeys: []string{"route"}, GroupValues: []string{"/a"}},
		reading{Customer: "c2", EventID: "e3", Time: sec(2 * time.Second), Value: "1", GroupKeys: []string{"route"}, GroupValues: []string{"/a"}},
	)
	assertReadings(t, e.readings("tokens"),
		reading{Customer: "c1", EventID: "e1", Time: sec(0), Value: "12.5", GroupKeys: []string{"model"}, GroupValues: []string{"gpt"}},
		reading{Customer: "c1", EventID: "e2", Time: sec(1500 * time.Millisecond), Value: "7", GroupKeys: []string{"model"}, GroupValues: []string{"claude"}},
		reading{Customer: "c2", EventID: "e3", Time: sec(2 * time.Second), Value: "0.001", GroupKeys: []string{"model"}, GroupValues: []string{""}},
	)
	for _, key := range []string{"latency-max", "latency-min", "latency-avg"} {
		assertReadings(t, e.readings(key),
			reading{Customer: "c1", EventID: "e1", Time: sec(0), Value: "0.25", GroupKeys: []string{}, GroupValues: []string{}},
			reading{Customer: "c1", EventID: "e2", Time: sec(1500 * time.Millisecond), Value: "1.75", GroupKeys: []string{}, GroupValues: []string{}},
			reading{Customer: "c2", EventID: "e3", Time: sec(2 * time.Second), Value: "3", GroupKeys: []string{}, GroupValues: []string{}},
		)
	}
	assertReadings(t, e.readings("users"),
		reading{Customer: "c1", EventID: "e1", Time: sec(0), Value: "0", Distinct: "u1", GroupKeys: []string{}, GroupValues: []string{}},
		reading{Customer: "c1", EventID: "e2", Time: sec(1500 * time.Millisecond), Value: "0", Distinct: "u2", GroupKeys: []string{}, GroupValues: []string{}},
		reading{Customer: "c2", EventID: "e3", Time: sec(2 * time.Second), Value: "0", Distinct: "1.5", GroupKeys: []string{}, GroupValues: []string{}},
	)
	assertReadings(t, e.readings("seats"),
		reading{Customer: "c2", EventID: "e4", Time: sec(0), Value: "5", GroupKeys: []string{"plan", "tier"}, GroupValues: []string{"team", "2"}},
	)

	// The rest of each row: revision, nanosecond time, ingestion time.
	calls := must(e.meters.Get(e.ctx, testOrg, "calls"))
	if n := e.count(`SELECT count() FROM readings FINAL WHERE meter_key = 'calls' AND meter_revision = ? AND time_ns = ?`,
		calls.Revision, t0.UnixNano()); n != 1 {
		t.Errorf("readings of calls with revision %d and time_ns %d: %d, want 1", calls.Revision, t0.UnixNano(), n)
	}
	if n := e.count(`SELECT count() FROM readings FINAL WHERE org_id = 'other'`); n != 0 {
		t.Errorf("another organization's meter produced %d readings from acme's events", n)
	}
	if n := e.count(`SELECT count() FROM readings FINAL WHERE ingested_at < now() - 600`); n != 0 {
		t.Errorf("%d readings have no ingestion time", n)
	}
	// Every event is stored once, unmatched ones too.
	if n := e.count(`SELECT count() FROM events FINAL`); n != 5 {
		t.Errorf("events: %d rows, want 5", n)
	}
	if n := e.count(`SELECT count() FROM events FINAL WHERE id = 'e4' AND type = 'seats' AND properties = '{"seats":5,"plan":{"name":"team","tier":2}}' AND time_ns = ?`,
		t0.UnixNano()); n != 1 {
		t.Errorf("event e4 not stored as sent")
	}
	for outcome, want := range map[string]float64{outcomeMetered: 4, outcomeUnmatched: 1, outcomeDuplicate: 0, outcomeDeadLettered: 0} {
		if got := metricValue(t, run.reg, "tally_aggregator_events_total", map[string]string{"outcome": outcome}); got != want {
			t.Errorf("events_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
	if got := metricValue(t, run.reg, "tally_aggregator_pipeline_latency_seconds", nil); got != 5 {
		t.Errorf("pipeline latency observed %v events, want 5", got)
	}
	if got := metricValue(t, run.reg, "tally_aggregator_assigned_partitions", nil); got != 2 {
		t.Errorf("assigned_partitions = %v, want 2", got)
	}
}

func withGroup(c Config, t testing.TB) Config {
	c.GroupID = groupID(t)
	return c
}

// TestDuplicatesKeepFirstVersion re-sends events in one batch, across
// batches, and with other values, time and type: one reading each, with
// the first version's values.
func TestDuplicatesKeepFirstVersion(t *testing.T) {
	e := newEnv(t, 1)
	e.createMeter(testOrg, `{"key":"tokens","event_type":"api_call","aggregation":"SUM","value_property":"tokens"}`)
	a1 := event("c1", "a", "api_call", t0, `{"tokens":1}`)
	b1 := event("c1", "b", "api_call", t0, `{"tokens":2}`)
	b2 := event("c1", "b", "api_call", t0.Add(time.Hour), `{"tokens":200}`)
	// Produced before the aggregator starts, so its first fetch takes them
	// all as one batch.
	e.produce(a1, a1, b1, b2)
	cfg := withGroup(testConfig(), t)
	// The backfill writes copies of live readings (folded by FINAL); off,
	// so that the row count without FINAL shows the live path alone.
	cfg.Backfill = false
	run := e.start(cfg)
	e.waitCommitted(groupID(t))

	a3 := event("c1", "a", "other_type", t0.Add(-time.Hour), `{"tokens":100}`)
	c1 := event("c1", "c", "api_call", t0, `{"tokens":3}`)
	e.produce(a3, b1, c1)
	e.waitCommitted(groupID(t))

	// The same id for another customer is another event.
	other := event("c2", "a", "api_call", t0, `{"tokens":4}`)
	e.produce(other)
	e.waitCommitted(groupID(t))

	sec := t0.Truncate(time.Second)
	assertReadings(t, e.readings("tokens"),
		reading{Customer: "c1", EventID: "a", Time: sec, Value: "1", GroupKeys: []string{}, GroupValues: []string{}},
		reading{Customer: "c1", EventID: "b", Time: sec, Value: "2", GroupKeys: []string{}, GroupValues: []string{}},
		reading{Customer: "c1", EventID: "c", Time: sec, Value: "3", GroupKeys: []string{}, GroupValues: []string{}},
		reading{Customer: "c2", EventID: "a", Time: sec, Value: "4", GroupKeys: []string{}, GroupValues: []string{}},
	)
	// Not even unmerged copies: a duplicate writes no row at all.
	if n := e.count(`SELECT count() FROM readings`); n != 4 {
		t.Errorf("readings without FINAL: %d rows, want 4", n)
	}
	if n := e.count(`SELECT count() FROM events WHERE id = 'a' AND customer_id = 'c1' AND type = 'api_call' AND kafka_offset = 0`); n != 1 {
		t.Errorf("event c1/a: first version not the one stored")
	}
	for outcome, want := range map[string]float64{outcomeMetered: 4, outcomeDuplicate: 4} {
		if got := metricValue(t, run.reg, "tally_aggregator_events_total", map[string]string{"outcome": outcome}); got != want {
			t.Errorf("events_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
}

// TestDecimalsExact sums ten thousand readings of 0.1 to exactly 1000.
func TestDecimalsExact(t *testing.T) {
	e := newEnv(t, 4)
	e.createMeter(testOrg, `{"key":"gb","event_type":"storage","aggregation":"SUM","value_property":"gb"}`)
	const n = 10_000
	recs := make([]schemas.Record, n)
	for i := range recs {
		recs[i] = event(fmt.Sprintf("c%d", i%50), fmt.Sprintf("e%d", i), "storage", t0.Add(time.Duration(i)*time.Millisecond), `{"gb":0.1}`)
	}
	e.produce(recs...)
	cfg := withGroup(testConfig(), t)
	cfg.BatchSize = 1000
	e.start(cfg)
	e.waitCommitted(groupID(t))

	if got := e.decimal(`SELECT sum(value) FROM readings FINAL WHERE meter_key = 'gb'`); got.String() != "1000" {
		t.Errorf("sum = %s, want exactly 1000", got)
	}
	if got := e.count(`SELECT count() FROM readings FINAL WHERE meter_key = 'gb'`); got != n {
		t.Errorf("%d readings, want %d", got, n)
	}
}

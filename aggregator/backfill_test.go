package aggregator

import (
	"fmt"
	"testing"

	"github.com/tally-oss/tally/schemas"
)

// TestBackfillNewMeter: events stored before a meter existed count once
// the meter exists, and are not counted twice with the live events that
// follow; a later version of an old event stays a duplicate.
func TestBackfillNewMeter(t *testing.T) {
	e := newEnv(t, 2)
	batch := func(from, n int, props string) []schemas.Record {
		recs := make([]schemas.Record, n)
		for i := range recs {
			recs[i] = event(fmt.Sprintf("c%d", (from+i)%7), fmt.Sprintf("e%d", from+i), "api_call", t0, props)
		}
		return recs
	}
	e.produce(batch(0, 300, `{"tokens":0.5}`)...)
	e.produce(event("c1", "bad", "api_call", t0, `{"tokens":"lots"}`))
	cfg := withGroup(testConfig(), t)
	run := e.start(cfg)
	e.waitCommitted(cfg.GroupID)
	if n := e.count(`SELECT count() FROM readings`); n != 0 {
		t.Fatalf("%d readings before any meter exists", n)
	}

	m := e.createMeter(testOrg, `{"key":"tokens","event_type":"api_call","aggregation":"SUM","value_property":"tokens"}`)
	// Live events after the meter, and a later version of an old event.
	e.produce(batch(300, 200, `{"tokens":0.25}`)...)
	e.produce(event("c0", "e0", "api_call", t0, `{"tokens":1000}`))
	e.waitCommitted(cfg.GroupID)
	e.waitFor("the backfill to complete", func() bool {
		return e.count(`SELECT count() FROM meter_backfills FINAL WHERE org_id = ? AND meter_key = 'tokens' AND meter_revision = ?`,
			testOrg, m.Revision) == 1
	})

	if n := e.count(`SELECT count() FROM readings FINAL WHERE meter_key = 'tokens'`); n != 500 {
		t.Errorf("readings: %d, want 500", n)
	}
	if got := e.decimal(`SELECT sum(value) FROM readings FINAL WHERE meter_key = 'tokens'`); got.String() != "200" {
		t.Errorf("sum = %s, want exactly 200 (300 x 0.5 + 200 x 0.25)", got)
	}
	if n := e.count(`SELECT count() FROM dead_letters FINAL WHERE event_id = 'bad' AND meter_key = 'tokens' AND reason = ?`,
		schemas.ReasonValueNotNumber); n != 1 {
		t.Errorf("the unmeterable old event has %d dead letters, want 1", n)
	}
	if got := metricValue(t, run.reg, "tally_aggregator_backfills_total", nil); got != 1 {
		t.Errorf("backfills_total = %v, want 1", got)
	}

	// A restarted aggregator does not backfill a completed revision again.
	run.shutdown(t)
	again := e.start(cfg)
	e.produce(batch(500, 10, `{"tokens":1}`)...)
	e.waitCommitted(cfg.GroupID)
	if got := metricValue(t, again.reg, "tally_aggregator_backfills_total", nil); got != 0 {
		t.Errorf("backfills_total after restart = %v, want 0", got)
	}
	if got := e.decimal(`SELECT sum(value) FROM readings FINAL WHERE meter_key = 'tokens'`); got.String() != "210" {
		t.Errorf("sum after restart = %s, want exactly 210", got)
	}
}

// TestBackfillWithoutNewEvents: a meter created while no events arrive
// still shows the usage of the events stored before it.
func TestBackfillWithoutNewEvents(t *testing.T) {
	e := newEnv(t, 1)
	for i := range 50 {
		e.produce(event("c1", fmt.Sprintf("q%d", i), "api_call", t0, `{"tokens":2}`))
	}
	cfg := withGroup(testConfig(), t)
	e.start(cfg)
	e.waitCommitted(cfg.GroupID)
	e.createMeter(testOrg, `{"key":"quiet","event_type":"api_call","aggregation":"SUM","value_property":"tokens"}`)
	e.waitFor("the quiet meter's readings", func() bool {
		return e.count(`SELECT count() FROM readings FINAL WHERE meter_key = 'quiet'`) == 50
	})
	if got := e.decimal(`SELECT sum(value) FROM readings FINAL WHERE meter_key = 'quiet'`); got.String() != "100" {
		t.Errorf("sum = %s, want 100", got)
	}
}

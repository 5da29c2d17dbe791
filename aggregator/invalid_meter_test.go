package aggregator

import (
	"fmt"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/docstore"
	"github.com/tally-oss/tally/schemas"
)

// TestInvalidMeterIsSurfacedAndRecomputed: while a stored meter no longer
// validates, each of its events is dead-lettered as meter_invalid and the
// tally_aggregator_invalid_meters gauge counts it; once it validates again
// (here with an aggregator restarted in between, as after an upgrade that
// accepts it again) or is replaced by a fixed definition (a new revision),
// its readings are recomputed from the stored events and equal the full
// count.
// (Before the fix: the events of the broken meter were committed with
// neither readings nor dead letters.)
func TestInvalidMeterIsSurfacedAndRecomputed(t *testing.T) {
	e := newEnv(t, 2)
	inPlace := e.createMeter(testOrg, `{"key":"calls","event_type":"api","aggregation":"COUNT"}`)
	replaced := e.createMeter(testOrg, `{"key":"calls2","event_type":"api","aggregation":"COUNT"}`)
	batch := func(from, n int) {
		for i := range n {
			e.produce(event(fmt.Sprintf("c%d", i%5), fmt.Sprintf("e%d", from+i), "api", t0, `{}`))
		}
	}
	cfg := withGroup(testConfig(), t)
	run := e.start(cfg)
	batch(0, 20)
	e.waitCommitted(cfg.GroupID)
	e.waitFor("the backfills of both meters", func() bool {
		return e.count(`SELECT count() FROM meter_backfills FINAL WHERE org_id = ?`, testOrg) == 2
	})

	// Both definitions stop validating, written around the API (as rules
	// that changed, or an operator, would leave them).
	for _, m := range []schemas.Meter{inPlace, replaced} {
		e.writeMeterRow(m, fmt.Sprintf(`{"key":%q,"event_type":"api","aggregation":"BOGUS"}`, m.Key))
	}
	batch(20, 30)
	e.waitCommitted(cfg.GroupID)
	for _, m := range []schemas.Meter{inPlace, replaced} {
		if n := e.count(`SELECT count() FROM dead_letters FINAL WHERE meter_key = ? AND reason = ?`, m.Key, schemas.ReasonMeterInvalid); n != 30 {
			t.Errorf("meter %s: %d meter_invalid dead letters for the 30 events while it was invalid, want 30", m.Key, n)
		}
	}
	if got := metricValue(t, run.reg, "tally_aggregator_invalid_meters", nil); got != 2 {
		t.Errorf("invalid_meters = %v, want 2", got)
	}
	run.shutdown(t)

	// One validates again with its revision, while no aggregator runs; the
	// other is replaced through the API, which makes a new revision.
	e.writeMeterRow(inPlace, fmt.Sprintf(`{"key":%q,"event_type":"api","aggregation":"COUNT"}`, inPlace.Key))
	fixed, err := schemas.ParseMeter([]byte(`{"key":"calls2","event_type":"api","aggregation":"COUNT"}`))
	if err != nil {
		t.Fatal(err)
	}
	fixed, _, err = e.meters.Put(e.ctx, testOrg, fixed)
	if err != nil {
		t.Fatal(err)
	}
	again := e.start(cfg)
	batch(50, 10)
	e.waitCommitted(cfg.GroupID)
	for _, m := range []schemas.Meter{inPlace, fixed} {
		e.waitFor(fmt.Sprintf("meter %s revision %d to count all 60 events", m.Key, m.Revision), func() bool {
			return e.count(`SELECT count() FROM readings FINAL WHERE meter_key = ? AND meter_revision = ?`, m.Key, m.Revision) == 60
		})
	}
	if got := metricValue(t, again.reg, "tally_aggregator_invalid_meters", nil); got != 0 {
		t.Errorf("invalid_meters after the fix = %v, want 0", got)
	}
}

// writeMeterRow stores definition as the current version of m, keeping
// its revision, without validating it.
func (e *env) writeMeterRow(m schemas.Meter, definition string) {
	e.t.Helper()
	now := time.Now().UTC()
	table := docstore.New(e.conn, "meters")
	current, _, err := table.Current(e.ctx, testOrg, m.Key)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := table.Append(e.ctx, docstore.Row{OrgID: testOrg, Key: m.Key, Revision: m.Revision, Definition: definition,
		Version: docstore.NextVersion(now, current.Version)}, now); err != nil {
		e.t.Fatal(err)
	}
}

// TestInvalidMeterRecoveredWhileRunning: a meter that validates again with
// its revision while the aggregator runs is backfilled again, although its
// backfill had completed before it broke.
func TestInvalidMeterRecoveredWhileRunning(t *testing.T) {
	e := newEnv(t, 1)
	m := e.createMeter(testOrg, `{"key":"calls","event_type":"api","aggregation":"COUNT"}`)
	cfg := withGroup(testConfig(), t)
	run := e.start(cfg)
	for i := range 10 {
		e.produce(event("c1", fmt.Sprintf("a%d", i), "api", t0, `{}`))
	}
	e.waitCommitted(cfg.GroupID)
	e.waitFor("the backfill", func() bool {
		return e.count(`SELECT count() FROM meter_backfills FINAL WHERE meter_key = 'calls'`) == 1
	})
	e.writeMeterRow(m, `{"key":"calls","event_type":"api","aggregation":"BOGUS"}`)
	e.waitFor("the aggregator to see the meter broken", func() bool {
		return metricValue(t, run.reg, "tally_aggregator_invalid_meters", nil) == 1
	})
	for i := range 10 {
		e.produce(event("c1", fmt.Sprintf("b%d", i), "api", t0, `{}`))
	}
	e.waitCommitted(cfg.GroupID)
	if n := e.count(`SELECT count() FROM dead_letters FINAL WHERE reason = ?`, schemas.ReasonMeterInvalid); n != 10 {
		t.Errorf("%d meter_invalid dead letters, want 10", n)
	}
	e.writeMeterRow(m, `{"key":"calls","event_type":"api","aggregation":"COUNT"}`)
	e.waitFor("the meter to count all 20 events", func() bool {
		return e.count(`SELECT count() FROM readings FINAL WHERE meter_key = 'calls' AND meter_revision = ?`, m.Revision) == 20
	})
}

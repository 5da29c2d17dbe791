package aggregator

import (
	"fmt"
	"testing"

	"github.com/tally-oss/tally/schemas"
)

// TestMeterStoredBeforeTheAddressedPrefix: a meter stored before the "@"
// prefix was reserved (event_type "@mention") keeps metering its events
// after the upgrade, or its events are dead-lettered with a reason.
// (Before the fix the stored definition no longer validated, meterstore.ListAll
// reported it and the aggregator skipped the meter: every event of its type
// was committed and neither metered nor dead-lettered.)
func TestMeterStoredBeforeTheAddressedPrefix(t *testing.T) {
	e := newEnv(t, 1)
	// What POST /api/v1/meters accepted before f0e1d76: meterstore.Create
	// does not validate (the handler did, with the rules of its time).
	legacy := schemas.Meter{Key: "mentions", EventType: "@mention", Aggregation: schemas.AggCount}
	stored, err := e.meters.Create(e.ctx, testOrg, legacy)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		e.produce(event("c1", fmt.Sprintf("m%d", i), "@mention", t0, `{}`))
	}
	cfg := withGroup(testConfig(), t)
	e.start(cfg)
	e.waitCommitted(cfg.GroupID)
	readings := e.count(`SELECT count() FROM readings FINAL WHERE org_id = ? AND meter_key = ? AND meter_revision = ?`,
		testOrg, stored.Key, stored.Revision)
	deadLetters := e.count(`SELECT count() FROM dead_letters FINAL WHERE org_id = ?`, testOrg)
	if readings != 10 || deadLetters != 0 {
		t.Errorf("legacy meter %q (event_type %q): %d readings and %d dead letters for 10 committed events; "+
			"want 10 readings (or 10 dead letters saying why): the events are silently unmetered",
			stored.Key, stored.EventType, readings, deadLetters)
	}
	if _, err := e.meters.Get(e.ctx, testOrg, stored.Key); err != nil {
		t.Logf("GET of the legacy meter fails too: %v", err)
	}
}

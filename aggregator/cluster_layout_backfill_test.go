package aggregator

import (
	"strings"
	"testing"
	"time"
)

// TestClusterBackfillWaitsWhileLayoutHalted (review 8b G1): the shard-layout halt stops the partition loops and
// the backfiller. While the layout is not the accepted one, a Distributed
// insert routes a customer's readings by the *current* layout, so a
// backfill that runs during the halt stores readings on shards the
// accepted layout does not send that customer to; any later write of the
// same (event, revision) reading under the accepted layout (the live
// path's overlap with the backfill, a redelivered abandoned batch, a
// backfill redone) stores a second copy on another shard, and FINAL,
// folding per shard, counts both. Expectation: nothing is written to
// readings while the layout halt is on.
//
// Without the backfiller's pause, the backfill of "calls2", created while halted, writes
// e1's reading.
func TestClusterBackfillWaitsWhileLayoutHalted(t *testing.T) {
	lt := startLayoutTest(t, true)
	e, r, conn, name := lt.e, lt.r, lt.conn, lt.name

	acceptLayout(t, conn, name, 3, []uint32{1, 1, 1}, time.Now().UTC().Truncate(time.Second).Add(time.Hour))
	e.waitFor("the partition halted for the layout", func() bool {
		return metricValue(t, r.reg, "tally_aggregator_halted_partitions", map[string]string{"reason": "cluster_layout_changed"}) == 1
	})
	_, body := readyz(t, r)
	if !strings.Contains(body, "3 shards") {
		t.Logf("readiness: %s", body)
	}

	// A meter created while the aggregator is halted for the layout.
	e.createMeter(testOrg, `{"key":"calls2","event_type":"api","aggregation":"SUM","value_property":"n"}`)
	deadline := time.Now().Add(4 * meterPollInterval)
	for time.Now().Before(deadline) {
		if rs := e.readings("calls2"); len(rs) > 0 {
			t.Fatalf("the backfiller wrote %d readings of calls2 (first: %+v) while consumption was halted because the shard layout "+
				"is not the accepted one: on a really changed remote_servers they go to the shards of the unaccepted layout", len(rs), rs[0])
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The layout accepted again (2 shards, later still): the halt ends and
	// the paused backfill completes, e1's reading of calls2 stored once.
	acceptLayout(t, conn, name, 2, []uint32{1, 1}, time.Now().UTC().Truncate(time.Second).Add(2*time.Hour))
	e.waitFor("the backfill of calls2 after the halt", func() bool { return len(e.readings("calls2")) > 0 })
	if rs := e.readings("calls2"); len(rs) != 1 || rs[0].EventID != "e1" {
		t.Fatalf("after the halt, readings of calls2 = %+v, want e1's once", rs)
	}
}

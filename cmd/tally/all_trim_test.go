package main

import (
	"strings"
	"syscall"
	"testing"
)

// TestAllRestartAfterTrimMetersNewEvents: `tally all` trims what the
// aggregator committed from the embedded broker. When a trim emptied a
// partition (an idle system), a clean restart reloaded it with its offsets
// back at 0 while the group's committed offset stayed where it was: the
// aggregator halted the partition (log_truncated) or, where new records
// reached the old offset first, skipped them silently. The trim now keeps
// each partition's last committed record.
func TestAllRestartAfterTrimMetersNewEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the tally binary")
	}
	bin := buildTallyBinary(t)
	const devKey = "all-test-dev-key-0123456789abcdef"
	setup := newAllSetup(t, devKey)

	p := startAll(t, bin, setup)
	p.waitReady()
	p.createMeter(`{"key": "calls", "name": "API calls", "event_type": "api.call", "aggregation": "SUM", "value_property": "$.value"}`)
	p.postEvents(0, 100)
	p.waitUsage("calls", "10")
	// The trimmer runs every second here: wait until it deleted all it
	// may (each partition keeps its last committed record).
	p.waitMetric("tally_devstack_trimmed_records_total", func(v float64) bool { return v >= 90 })
	p.stop(syscall.SIGTERM)

	p = startAll(t, bin, setup)
	p.waitReady()
	p.postEvents(100, 100) // new ids: accepted, 202
	defer func() {
		if t.Failed() {
			_, halted := p.metric("tally_aggregator_halted_partitions")
			t.Logf("halted partitions: %s", strings.Join(halted, "; "))
		}
	}()
	p.waitUsage("calls", "20")
}

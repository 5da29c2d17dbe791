package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestBenchExactCatchesALateDoubleCount (review 7b): a one-second slice of
// the end-to-end load becomes exact once, then one of its readings is
// stored a second time under another event id (what a double count is in
// readings: a redelivery the dedup missed, a copy table counting twice).
// benchSlices.poll used to mark a slice exact the first time its total
// matched and never look again, and nothing checked after the drain, so
// the run still reported exact: true with a wrong total. Now a later poll
// records the difference, and the final check after the drain
// (benchSlices.verify, as benchAll.run calls it) fails naming the slice,
// its expected and its served total; the run is not exact.
func TestBenchExactCatchesALateDoubleCount(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline")
	}
	p := startPipeline(t, "-api-keys=bench:"+benchKey)
	ctx := context.Background()
	lg := benchLoadgen(p.ingestURL, p.queryURL, benchShape{Conns: 1, Batch: 10, Format: "json"}, "rv7b", slog.New(slog.DiscardHandler))
	if err := lg.ensureMeter(ctx); err != nil {
		t.Fatal(err)
	}
	newCut := func() *benchSlices { return &benchSlices{base: "rv7b", runs: map[string]*benchSlice{}} }
	cut := newCut()
	from := time.Now().Add(-time.Minute)
	sent := lg.sendFor(ctx, 300*time.Millisecond, cut)
	if sent.accepted == 0 || sent.failed != 0 {
		t.Fatalf("accepted %d, failed %d", sent.accepted, sent.failed)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		done, err := cut.poll(ctx, lg, from)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("usage never exact")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Before the double count the final check passes.
	r := &benchLoadResult{cut: cut}
	if r.verifyErr = cut.verify(ctx, lg, from); r.verifyErr != nil {
		t.Fatalf("final check before the double count: %v", r.verifyErr)
	}
	if _, exact, _ := r.freshness(); !exact {
		t.Fatal("not exact before the double count")
	}
	// A second harness that saw the slice exact but has not polled since:
	// only the final check can catch the double count.
	late := newCut()
	cut.mu.Lock()
	for run, sl := range cut.runs {
		c := *sl
		late.runs[run] = &c
	}
	late.all = true
	cut.mu.Unlock()

	// One reading of the run counted twice.
	if err := p.conn.Exec(ctx, `INSERT INTO readings (org_id, meter_key, meter_revision, customer_id, event_id, time, time_ns, value,
		distinct_value, group_keys, group_values, ingested_at)
		SELECT org_id, meter_key, meter_revision, customer_id, concat(event_id, '-again'), time, time_ns, value,
		distinct_value, group_keys, group_values, ingested_at FROM readings WHERE org_id = 'bench' LIMIT 1`); err != nil {
		t.Fatal(err)
	}

	// A poll after the double count records it.
	if _, err := cut.poll(ctx, lg, from); err != nil {
		t.Fatal(err)
	}
	if _, exact, _ := (&benchLoadResult{cut: cut}).freshness(); exact {
		t.Errorf("a poll after the double count: still exact (%d events acknowledged)", sent.accepted)
	}

	// The final check after the drain catches it without any poll between.
	err := late.verify(ctx, lg, from)
	if err == nil {
		t.Fatalf("final check: no error after one event was counted twice (%d events acknowledged)", sent.accepted)
	}
	if msg := err.Error(); !strings.Contains(msg, "slice rv7b-s0") || !strings.Contains(msg, "expected ") || !strings.Contains(msg, "served ") {
		t.Errorf("final check's error does not name the slice, its expected and served totals: %s", msg)
	}
	lr := &benchLoadResult{cut: late, verifyErr: err}
	if _, exact, _ := lr.freshness(); exact {
		t.Error("exact after the final check failed")
	}
	if ne := lr.notExact(time.Minute); ne == nil || ne.Error() != err.Error() {
		t.Errorf("the run's error is %v, want the final check's %v", ne, err)
	}
	t.Logf("final check: %v", err)
}

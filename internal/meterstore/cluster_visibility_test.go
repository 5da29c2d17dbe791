package meterstore

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/testenv"
)

// TestClusterMeterVisibilityIsMonotonic (review 8a, F1) holds
// the premise of aggregator/backfill.go's argument on a 2x2 cluster: once
// one batch's meter load (ListAll) has returned revision R, every later
// load, from any process, returns R. Otherwise:
//
//	t0 the API creates R: a quorum insert, committed on replica A of the
//	   org's shard and waiting until replica B fetches it (B lags);
//	t1 aggregator 1's batch loads meters through A (prefer_localhost, or
//	   load_balancing picks A): R is there -> the backfiller queues R and
//	   scans the org's events (ScanEvents); event E is not stored yet;
//	t2 aggregator 2 stores E (step 4), then loads meters through B: no R
//	   -> E gets no reading for R;
//	t3 B fetches; the backfill of R completes and is recorded.
//
// E's reading for R is lost for good (nothing backfills R again). On one
// server this cannot happen: a part is visible to every reader at once.
// Here a quorum insert's part is visible on the replica that wrote it
// (to reads without select_sequential_consistency, as ListAll reads) long
// before the other replica has it, and stays so when the quorum times out
// (code 319: the API answered 503, but R is live on A).
func TestClusterMeterVisibilityIsMonotonic(t *testing.T) {
	cdb := testenv.NewMigratedClusterDatabase(t)
	addrs, db := cdb.Addrs, cdb.Database
	ctx := t.Context()
	pools := make([]driver.Conn, len(addrs))
	for i := range addrs {
		pools[i] = cdb.Open(t, i, 4)
	}
	// A lagging replica: every server stops fetching meters_local parts
	// (only the org's shard matters; which one it is does not).
	for _, p := range pools {
		if err := p.Exec(ctx, "SYSTEM STOP FETCHES "+db+".meters_local"); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, p := range pools {
			_ = p.Exec(context.Background(), "SYSTEM START FETCHES "+db+".meters_local")
		}
	}()

	// The API's write, through server 0; it waits for the quorum.
	created := make(chan error, 1)
	go func() {
		wctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_quorum_timeout": 8000}))
		_, err := New(pools[0]).Create(wctx, "acme", meter(t, callsDef))
		created <- err
	}()

	// Meanwhile the aggregators' loads, one per server (each server reads
	// its own replica of the org's shard when it has one).
	seen := map[int]bool{}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for i, p := range pools {
			all, err := New(p).ListAll(ctx)
			if err != nil {
				t.Fatalf("ListAll on server %d: %v", i, err)
			}
			seen[i] = len(all["acme"]) == 1
		}
		if seen[0] || seen[1] || seen[2] || seen[3] {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var saw, missed []int
	for i := range pools {
		if seen[i] {
			saw = append(saw, i)
		} else {
			missed = append(missed, i)
		}
	}
	for _, p := range pools {
		_ = p.Exec(ctx, "SYSTEM START FETCHES "+db+".meters_local")
	}
	err := <-created
	t.Logf("Create returned %v", err)
	if len(saw) > 0 && len(missed) > 0 {
		t.Errorf("while the meter's quorum insert waited, ListAll on servers %v returned it and ListAll on servers %v did not: "+
			"a batch that loads meters after another batch saw the revision can miss it (the backfill of R may already have "+
			"scanned the events before this batch stored its own): %s", saw, missed,
			"cluster connections must read with select_sequential_consistency=1, so a revision is visible only once on every replica")
	}
}

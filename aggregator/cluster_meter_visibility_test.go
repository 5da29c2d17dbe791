package aggregator

import (
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

// TestClusterMeterSeenOnOneReplica (review 8a, F1, end to end): a meter
// revision R whose quorum insert still waits for the second replica of
// the org's catalog shard must be invisible to every aggregator until
// both replicas have it. Otherwise:
//
//  1. R is created through replica 1; replica 2 lags (its fetches of
//     meters_local are stopped: the lag every replica has, made long).
//  2. Aggregator A1 (server: replica 1) sees R, backfills it from the
//     events stored so far (none of e1) and records the backfill complete.
//  3. Event e1 arrives; aggregator A2 (server: replica 2) stores it and
//     loads the meters: no R, so no reading for R.
//  4. Replica 2 catches up; the API's create returns. A3 sees R, whose
//     backfill is recorded complete: nothing recomputes e1.
//
// e1 would then have no reading for R, for good: backfill.go's argument
// needs that a meter load that did not include R ran before R was seen
// by any load. Cluster connections read with select_sequential_consistency
// (chclient), so R is seen only once every replica has it.
func TestClusterMeterSeenOnOneReplica(t *testing.T) {
	cdb := testenv.NewMigratedClusterDatabase(t)
	addrs, db := cdb.Addrs, cdb.Database
	ctx := t.Context()
	replica1, replica2 := addrs[0], addrs[1] // shard 1
	conn1, conn2 := cdb.Open(t, 0, 4), cdb.Open(t, 1, 4)
	local1, local2 := testenv.Conn(t, replica1, db), testenv.Conn(t, replica2, db)
	if count(t, local1, "SELECT toUInt64(cityHash64('"+testOrg+"') % 2)") != 0 {
		t.Fatalf("org %s's catalog is not on shard 1", testOrg)
	}

	e := newClickHouseClusterEnv(t, replica1, db, conn1)

	// 1. R, through replica 1, while replica 2 lags.
	exec(t, local2, "SYSTEM STOP FETCHES meters_local")
	fetching := false
	startFetches := func() {
		if !fetching {
			exec(t, local2, "SYSTEM START FETCHES meters_local")
			fetching = true
		}
	}
	t.Cleanup(startFetches)
	created := make(chan error, 1)
	go func() {
		m, err := schemas.ParseMeter([]byte(`{"key":"calls","event_type":"api","aggregation":"SUM","value_property":"n"}`))
		if err == nil {
			wctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_quorum_timeout": 300000}))
			_, err = meterstore.New(conn1).Create(wctx, testOrg, m)
		}
		created <- err
	}()
	e.waitFor("replica 1 to hold the meter", func() bool {
		return count(t, local1, "SELECT count() FROM meters_local WHERE key = 'calls'") > 0
	})

	// 2. A1 on replica 1 sees R and backfills it (no events yet).
	run := withGroup(testConfig(), t)
	deps := func(conn driver.Conn) Deps { return Deps{ClickHouse: conn} }
	a1 := e.startWith(run, deps(conn1))
	// R must not be visible yet anywhere: were it, A1's backfiller would
	// take it within its first polls and record its backfill complete
	// before e1 is stored, which is the loss.
	for deadline := time.Now().Add(8 * meterPollInterval); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if count(t, local1, "SELECT count() FROM meter_backfills WHERE meter_key = 'calls'") > 0 {
			t.Fatal("A1 saw meter revision R while replica 2 lacked it and recorded R's backfill complete before e1 was stored: " +
				"an aggregator reading replica 2 meters e1 without R, and nothing recomputes it")
		}
	}
	a1.shutdown(t)

	// 3. e1 arrives; A2 on replica 2 meters it without R.
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	customer := "c1"
	e.produce(event(customer, "e1", "api", t0, `{"n":1}`))
	a2 := e.startWith(run, deps(conn2))
	e.waitCommitted(run.GroupID)
	a2.shutdown(t)

	// 4. Replica 2 catches up; the create returns. A3 sees R.
	startFetches()
	if err := <-created; err != nil {
		t.Fatalf("create meter: %v", err)
	}
	e.produce(event(customer, "e2", "api", t0, `{"n":1}`))
	a3 := e.startWith(run, deps(conn1))
	e.waitCommitted(run.GroupID)
	e.waitFor("e2's reading for R", func() bool {
		return count(t, local1, "SELECT count() FROM readings FINAL WHERE org_id = '"+testOrg+"' AND event_id = 'e2'") > 0
	})
	e.waitFor("R's backfill to be recorded", func() bool {
		return count(t, local1, "SELECT count() FROM meter_backfills WHERE meter_key = 'calls'") > 0
	})
	a3.shutdown(t)
	for _, c := range []driver.Conn{local1, local2} {
		exec(t, c, "SYSTEM SYNC REPLICA readings_local")
	}
	if n := count(t, local1, "SELECT count() FROM readings FINAL WHERE org_id = '"+testOrg+"' AND event_id = 'e1'"); n != 1 {
		t.Errorf("e1 has %d readings for meter calls, want 1: the live path (replica 2: no R) and the backfill "+
			"(replica 1: R seen before e1 was stored) both skipped it", n)
	}
}

package aggregator

import (
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/testenv"
)

// TestClusterShardRefusingRowsIsNotParked (review 8a F8): on a cluster, a
// Distributed insert of readings fails with a data error (code 6 here)
// raised by one shard's readings_local only, as after an ALTER that ran on
// some shards and not yet on others. The shard refuses every row, so the
// failure is about the table, not the rows: nothing may be parked. Proving
// "the table takes rows" with a row of another shard, a part of the batch
// or one canary, passes and parks the good readings of the broken shard
// (dead-lettered as unwritable, the batch committed). With a canary row per
// shard the proof fails too, the batch waits, and once the shard is
// repaired every reading is stored exactly once.
//
// The broken shard is made with what 18.16 offers per shard: a
// MATERIALIZED column on shard 2's readings_local (replicated to its
// second replica) that cannot be computed from a customer id; a different
// column type is refused by 18.16's Distributed insert with code 171 for
// every shard's rows, which is retried anyway.
func TestClusterShardRefusingRowsIsNotParked(t *testing.T) {
	cdb := testenv.NewMigratedClusterDatabase(t)
	addrs, db := cdb.Addrs, cdb.Database
	ctx := t.Context()
	conn := cdb.Open(t, 0, 4)
	shard2 := testenv.Conn(t, addrs[2], db) // replica 1 of shard 2

	e := newClickHouseClusterEnv(t, addrs[0], db, conn)
	e.createMeter(testOrg, `{"key":"calls","event_type":"api","aggregation":"SUM","value_property":"n"}`)
	for _, addr := range addrs {
		exec(t, testenv.Conn(t, addr, db), "SYSTEM SYNC REPLICA meters_local")
	}
	onShard := customersByShard(t, conn)

	// Shard 2 refuses every row: its customer ids are not numbers.
	exec(t, shard2, "ALTER TABLE readings_local ADD COLUMN f8_broken UInt64 MATERIALIZED toUInt64(customer_id)")
	repaired := false
	repair := func() {
		if !repaired {
			exec(t, shard2, "ALTER TABLE readings_local DROP COLUMN f8_broken")
			repaired = true
		}
	}
	t.Cleanup(repair)
	replica2 := testenv.Conn(t, addrs[3], db)
	e.waitFor("replica 2 of shard 2 to have the altered readings_local", func() bool {
		return count(t, replica2, "SELECT count() FROM system.columns WHERE database = currentDatabase() "+
			"AND table = 'readings_local' AND name = 'f8_broken'") == 1
	})

	run := withGroup(testConfig(), t)
	run.Backfill = false
	at := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	e.produce(event(onShard[0], "e1", "api", at, `{"n":1}`), event(onShard[1], "e2", "api", at, `{"n":2}`))
	r := e.startWith(run, Deps{ClickHouse: conn})
	waitSystemicOrCommitted(t, e, r, run.GroupID, tableReadings, 2)
	if got := e.committed(run.GroupID); got == 2 {
		t.Fatalf("shard 2 refuses every row, yet its reading was parked and the batch committed: "+
			"%d unwritable dead letters, parked metric %v",
			e.count("SELECT count() FROM dead_letters WHERE reason = 'unwritable'"),
			metricValue(t, r.reg, "tally_aggregator_parked_records_total", map[string]string{"reason": parkedReading}))
	}

	repair()
	e.waitCommitted(run.GroupID)
	r.shutdown(t)
	for _, id := range []string{"e1", "e2"} {
		if n := e.count("SELECT count() FROM readings FINAL WHERE org_id = ? AND event_id = ?", testOrg, id); n != 1 {
			t.Errorf("%s has %d readings, want 1", id, n)
		}
	}
	if n := e.count("SELECT count() FROM dead_letters"); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	// The canaries go to every shard, in the reserved organization.
	store := &clickhouseStore{conn: conn}
	for _, table := range []string{tableEvents, tableReadings, tableDeadLetters} {
		customers, err := store.canaryCustomers(ctx, table)
		if err != nil {
			t.Fatalf("canaries of %s: %v", table, err)
		}
		var shards []uint64
		for _, c := range customers {
			shards = append(shards, count(t, conn, fmt.Sprintf("SELECT toUInt64(cityHash64('%s', '%s') %% %d)",
				canaryOrg, c, testenv.ClusterShards)))
		}
		if len(shards) != testenv.ClusterShards || shards[0] != 0 || shards[1] != 1 {
			t.Errorf("canaries of %s: customers %v go to shards %v, want one to each shard in order", table, customers, shards)
		}
	}
}

// customersByShard returns, for each shard of the cluster (weights 1, 1),
// a customer of testOrg that the Distributed tables send to it.
func customersByShard(t *testing.T, conn driver.Conn) []string {
	t.Helper()
	out := make([]string, testenv.ClusterShards)
	found := 0
	for i := 0; i < 100 && found < len(out); i++ {
		c := fmt.Sprintf("c%d", i)
		s := count(t, conn, fmt.Sprintf("SELECT toUInt64(cityHash64('%s', '%s') %% %d)", testOrg, c, testenv.ClusterShards))
		if out[s] == "" {
			out[s] = c
			found++
		}
	}
	if found < len(out) {
		t.Fatal("no customer of 100 for some shard")
	}
	return out
}

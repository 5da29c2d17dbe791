package chclient_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tally-oss/tally/internal/chclient"
)

// TestClusterReadSkipsAFreshReplica (review 8a, F2): the
// guarantee the first-version lookup rests on -- "with the quorum at every
// replica, any replica holds every insert that returned" (CheckCluster),
// checked by select_sequential_consistency=1 -- does not hold for a replica
// that joins a shard or is rebuilt after losing its disk (a new replica in
// SCALING.md's "add replicas", a Kubernetes pod whose volume was replaced,
// a replica marked lost and cloned). It fetches the shard's existing parts
// in no particular order; 18.16's check only asks whether it has the last
// quorum part, so as soon as that small part is there, a sequentially
// consistent read succeeds on a replica that still lacks older parts. The
// lookup then misses stored identities (a later version counts twice) and
// the backfill's ScanEvents misses events (readings lost).
//
// The read here is the lookup's: through the Distributed table, from a
// server of the shard (prefer_localhost_replica), with the settings the
// aggregator's sessions send (Conn.WithSessionSettings). It passes once
// those settings keep stale replicas out (verified by hand on 18.16:
// max_replica_delay_for_distributed_queries=1 and
// fallback_to_stale_replicas_for_distributed_queries=0 always read the
// caught-up replica, local or remote).
func TestClusterReadSkipsAFreshReplica(t *testing.T) {
	c, db := newClusterDatabase(t)
	ctx := t.Context()
	servers := make([]interface {
		Exec(context.Context, string, ...any) error
	}, len(c.addrs))
	for i := range c.addrs {
		servers[i] = serverConn(t, c, i, db)
	}
	table := func(server int, replica string) error {
		shard := server/2 + 1
		return servers[server].Exec(ctx, fmt.Sprintf("CREATE TABLE %s.ids_local (x UInt64) ENGINE = ReplicatedMergeTree('/clickhouse/tables/freshreplica/%s/%d/ids', '%s') ORDER BY x",
			db, db, shard, replica))
	}
	// Shard 1: replica 2 (server 1) holds the data; shard 2: both replicas, empty.
	for _, s := range []int{1, 2, 3} {
		if err := table(s, fmt.Sprintf("r%d", s)); err != nil {
			t.Fatal(err)
		}
	}
	for s := range servers {
		if err := servers[s].Exec(ctx, fmt.Sprintf("CREATE TABLE %s.ids (x UInt64) ENGINE = Distributed(%s, %s, ids_local, x)", db, c.name, db)); err != nil {
			t.Fatal(err)
		}
	}
	// A second replica of shard 1's table outside the cluster's view (on
	// server 3, another table name), so that inserts reach a quorum of 2
	// and 18.16 records the last quorum part.
	if err := servers[3].Exec(ctx, fmt.Sprintf("CREATE TABLE %s.ids_extra (x UInt64) ENGINE = ReplicatedMergeTree('/clickhouse/tables/freshreplica/%s/1/ids', 'extra') ORDER BY x", db, db)); err != nil {
		t.Fatal(err)
	}
	// Old identities in several parts, then the last quorum insert.
	quorum := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_quorum": 2}))
	if err := servers[1].Exec(quorum, "INSERT INTO "+db+".ids_local SELECT number * 2 FROM system.numbers LIMIT 20000000"); err != nil {
		t.Fatal(err)
	}
	if err := servers[1].Exec(quorum, "INSERT INTO "+db+".ids_local SELECT 2 * 999999999 FROM system.one"); err != nil {
		t.Fatal(err)
	}
	const total = 20000001
	cfg := c.config(0, db) // the aggregator's: quorum 2, so its sessions read sequentially consistent
	svc, err := cfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	seq := svc.(*chclient.Conn).WithSessionSettings(ctx) // what the aggregator's lookups send
	for attempt := range 10 {
		// The fresh replica: server 0 joins shard 1.
		if err := table(0, fmt.Sprintf("fresh%d", attempt)); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
			var n uint64
			if err := svc.QueryRow(seq, "SELECT count() FROM "+db+".ids").Scan(&n); err != nil {
				time.Sleep(5 * time.Millisecond)
				continue // 289 REPLICA_IS_NOT_IN_QUORUM: the safe answer
			}
			if n < total {
				t.Fatalf("a sequentially consistent read through the Distributed table, on a server whose replica just joined "+
					"the shard, answered %d identities of %d (attempt %d): it had the last quorum part but not the older ones", n, total, attempt)
			}
			break
		}
		if err := servers[0].Exec(ctx, "DROP TABLE "+db+".ids_local"); err != nil {
			t.Fatal(err)
		}
	}
}

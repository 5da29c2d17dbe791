package aggregator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/testenv"
)

// TestClusterReadYourWrites: on a shard of two replicas, an event's first
// version is metered by an aggregator writing to replica 1, and its later
// version, redelivered after a rebalance, by one whose server is replica
// 2 (ClickHouse reads a Distributed table's shard on the local replica
// when there is one). Replication to replica 2 is stopped meanwhile
// (SYSTEM STOP FETCHES on its event_identities_local), which makes the
// lag that replication always has deterministic.
//
// Without insert_quorum the first aggregator's insert returns as soon as
// replica 1 has it, the second's first-version lookup misses it, and the
// later version is counted again: two readings for one event. With the
// cluster's settings (insert_quorum = the replicas of a shard), the insert
// does not return, and the first aggregator does not commit, until
// replica 2 has it; the lookup then finds it and the event counts once.
func TestClusterReadYourWrites(t *testing.T) {
	t.Run("insert quorum 2", func(t *testing.T) {
		if got := clusterReadYourWrites(t, 2); got != 1 {
			t.Errorf("event counted %d times with insert_quorum=2, want once", got)
		}
	})
	t.Run("without insert quorum", func(t *testing.T) {
		// What the settings prevent: the check above would fail.
		if got := clusterReadYourWrites(t, 0); got != 2 {
			t.Errorf("event counted %d times without insert_quorum, want 2: the test no longer shows why the quorum is needed", got)
		}
	})
}

// clusterReadYourWrites runs the two aggregators with insertQuorum and
// returns how many readings the event has.
func clusterReadYourWrites(t *testing.T, insertQuorum int) int {
	cdb := testenv.NewMigratedClusterDatabase(t)
	addrs, db := cdb.Addrs, cdb.Database
	ctx := t.Context()
	// addrs: shard 1 replica 1, shard 1 replica 2, shard 2 ...
	replica1, replica2 := addrs[0], addrs[1]
	// OpenLazy: Open refuses a cluster whose replicas outnumber the
	// quorum, which is the point of the second run.
	open := func(i int) driver.Conn {
		c := cdb.Config(i, 4)
		c.InsertQuorum = insertQuorum
		conn, err := c.OpenLazy()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	conn1, conn2 := open(0), open(1)
	local1, local2 := testenv.Conn(t, replica1, db), testenv.Conn(t, replica2, db)

	e := newClickHouseClusterEnv(t, replica1, db, conn1)
	e.createMeter(testOrg, `{"key":"calls","event_type":"api","aggregation":"SUM","value_property":"n"}`)
	// Both aggregators must know the meter: it is on the shard of its
	// organization, and a read may reach either of its replicas.
	for _, addr := range addrs {
		exec(t, testenv.Conn(t, addr, db), "SYSTEM SYNC REPLICA meters_local")
	}
	customer := customerOnFirstShard(t, local1)

	exec(t, local2, "SYSTEM STOP FETCHES event_identities_local")
	fetching := false
	startFetches := func() {
		if !fetching {
			exec(t, local2, "SYSTEM START FETCHES event_identities_local")
			fetching = true
		}
	}
	t.Cleanup(startFetches)

	// First version, metered through replica 1.
	run := withGroup(testConfig(), t)
	run.Backfill = false
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	e.produce(event(customer, "e1", "api", t0, `{"n":1}`))
	first := e.startWith(run, Deps{ClickHouse: conn1})
	e.waitFor("replica 1 to hold the first version", func() bool {
		return count(t, local1, "SELECT count() FROM event_identities_local WHERE id = 'e1'") > 0
	})
	if insertQuorum > 0 {
		// The insert waits for replica 2, which fetches nothing: not
		// acknowledged, nothing committed.
		if n := e.committed(run.GroupID); n != 0 {
			t.Fatalf("with insert_quorum=%d the first version was committed (offset %d) while replica 2 lacks it", insertQuorum, n)
		}
		startFetches()
	}
	e.waitCommitted(run.GroupID)
	first.shutdown(t)
	if n := count(t, local2, "SELECT count() FROM event_identities_local WHERE id = 'e1'"); insertQuorum > 0 && n == 0 {
		t.Fatal("a quorum insert returned before replica 2 had it")
	} else if insertQuorum == 0 && n != 0 {
		t.Fatal("replica 2 fetched the first version although its fetches are stopped")
	}

	// A later version of the same identity, an hour later in event time,
	// after the partition moved to an aggregator whose server is replica 2.
	e.produce(event(customer, "e1", "api", t0.Add(time.Hour), `{"n":1000}`))
	second := e.startWith(run, Deps{ClickHouse: conn2})
	e.waitCommitted(run.GroupID)
	second.shutdown(t)

	startFetches()
	for _, c := range []driver.Conn{local1, local2} {
		exec(t, c, "SYSTEM SYNC REPLICA readings_local")
	}
	var values []string
	rows, err := local1.Query(ctx, "SELECT toString(value) FROM readings FINAL WHERE org_id = ? AND event_id = 'e1' ORDER BY value", testOrg)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		values = append(values, strings.TrimRight(strings.TrimRight(v, "0"), "."))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("insert_quorum=%d: readings of e1: %v", insertQuorum, values)
	return len(values)
}

// customerOnFirstShard returns a customer whose events the Distributed
// tables send to the first shard (cityHash64(org_id, customer_id) modulo
// the two shards' weights of 1 is 0).
func customerOnFirstShard(t *testing.T, conn driver.Conn) string {
	t.Helper()
	for i := range 100 {
		c := fmt.Sprintf("c%d", i)
		if count(t, conn, fmt.Sprintf("SELECT toUInt64(cityHash64('%s', '%s') %% 2)", testOrg, c)) == 0 {
			return c
		}
	}
	t.Fatal("no customer of 100 hashes to the first shard")
	return ""
}

package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestClusterDatabase creates a database ON CLUSTER, a replicated table in
// it and a Distributed table over that, writes through one server, reads
// every row back through another, and checks the database is gone from
// every server after the test.
func TestClusterDatabase(t *testing.T) {
	ctx := context.Background()
	var name, database string
	var addrs []string
	t.Run("use", func(t *testing.T) {
		name, addrs, database = NewClusterDatabase(t)
		if len(addrs) != ClusterShards*ClusterReplicas {
			t.Fatalf("cluster %s has %d servers, want %d", name, len(addrs), ClusterShards*ClusterReplicas)
		}
		conn := Conn(t, addrs[0], database)
		for _, ddl := range []string{
			fmt.Sprintf("CREATE TABLE %s.t_local ON CLUSTER %s (id UInt64) "+
				"ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/%s/t', '{replica}') ORDER BY id", database, name, database),
			fmt.Sprintf("CREATE TABLE %s.t ON CLUSTER %s AS %s.t_local ENGINE = Distributed(%s, %s, t_local, id)",
				database, name, database, name, database),
		} {
			if err := conn.Exec(ctx, ddl); err != nil {
				t.Fatalf("%s: %v", ddl, err)
			}
		}
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO t (id)")
		if err != nil {
			t.Fatal(err)
		}
		for id := range uint64(100) {
			if err := batch.Append(id); err != nil {
				t.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			t.Fatal(err)
		}
		// Without insert_distributed_sync the Distributed table forwards the
		// rows in the background: wait for them.
		other := Conn(t, addrs[len(addrs)-1], database)
		deadline := time.Now().Add(time.Minute)
		for {
			var n uint64
			err := other.QueryRow(ctx, "SELECT count() FROM t").Scan(&n)
			if err == nil && n == 100 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("count() through %s = %d (err %v), want 100", addrs[len(addrs)-1], n, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	for _, addr := range addrs {
		var n uint64
		conn := Conn(t, addr, "default")
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", database).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("database %s still exists on %s after the test", database, addr)
		}
	}
}

func TestParseClusterSpec(t *testing.T) {
	name, addrs, err := parseClusterSpec("tally=127.0.0.1:1, 127.0.0.1:2")
	if err != nil || name != "tally" || len(addrs) != 2 || addrs[1] != "127.0.0.1:2" {
		t.Fatalf("parseClusterSpec = %q %q %v", name, addrs, err)
	}
	for _, bad := range []string{"127.0.0.1:1", "=127.0.0.1:1", "tally="} {
		if _, _, err := parseClusterSpec(bad); err == nil {
			t.Errorf("parseClusterSpec(%q): no error", bad)
		}
	}
}

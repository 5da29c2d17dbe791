package chserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

func startClusterT(t *testing.T, shards, replicas int) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	zk := startZooKeeperT(t, t.TempDir())
	c, err := StartCluster(ctx, ClusterOptions{
		Name: "test", Shards: shards, Replicas: replicas,
		Dir: t.TempDir(), ZooKeeperAddr: zk.Addr(),
	}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	return c
}

func execQuery(t *testing.T, conn driver.Conn, query string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := conn.Exec(ctx, query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func insertIDs(t *testing.T, conn driver.Conn, table string, from, to int) {
	t.Helper()
	batch, err := conn.PrepareBatch(context.Background(), "INSERT INTO "+table+" (id)")
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < to; i++ {
		if err := batch.Append(uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatalf("insert into %s: %v", table, err)
	}
}

func wantCount(t *testing.T, conn driver.Conn, table string, want uint64) {
	t.Helper()
	var got uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+table).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("count() of %s = %d, want %d", table, got, want)
	}
}

// waitReplicated waits until every replica caught up with its peers;
// replication is asynchronous.
func waitReplicated(t *testing.T, c *Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCluster starts 2 shards x 2 replicas on a private ZooKeeper, creates
// a replicated table and a Distributed one ON CLUSTER, and checks that a
// row written on one replica reaches its peer, that the shards split the
// rows, and that a killed replica catches up with what its peer took while
// it was down once it is restarted on the same directory and ports.
func TestCluster(t *testing.T) {
	c := startClusterT(t, 2, 2)
	if got := len(c.Addrs()); got != 4 {
		t.Fatalf("Addrs() = %d servers, want 4", got)
	}
	conns := make([][]driver.Conn, 2)
	for s := range 2 {
		for r := range 2 {
			conns[s] = append(conns[s], connect(t, c.Addr(s, r)))
		}
	}
	if got := macros(t, conns[1][0]); got != "02 r1" {
		t.Fatalf("macros of shard 1 replica 0 = %q, want 02 r1", got)
	}

	execQuery(t, conns[0][0], "CREATE DATABASE h ON CLUSTER test")
	execQuery(t, conns[0][0], "CREATE TABLE h.t_local ON CLUSTER test (id UInt64) "+
		"ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/h/t', '{replica}') ORDER BY id")
	execQuery(t, conns[0][0], "CREATE TABLE h.t ON CLUSTER test AS h.t_local ENGINE = Distributed(test, h, t_local, id)")

	// A row written on one replica is read on the other.
	insertIDs(t, conns[0][0], "h.t_local", 0, 10)
	waitReplicated(t, c)
	wantCount(t, conns[0][1], "h.t_local", 10)

	// Through Distributed, rows are split by shard (id % 2: even ids on
	// the first shard) and reach both replicas of each shard.
	insertWithSettings(t, c.Addr(1, 1), "h.t", 1000, 1100)
	waitReplicated(t, c)
	wantCount(t, conns[1][1], "h.t", 110)
	for r := range 2 {
		wantCount(t, conns[0][r], "h.t_local", 60)
		wantCount(t, conns[1][r], "h.t_local", 50)
	}

	// Kill a replica, write to its peer, restart it: it catches up, on the
	// same ports and macros.
	if err := c.Kill(0, 1); err != nil {
		t.Fatal(err)
	}
	if c.Server(0, 1) != nil {
		t.Fatal("Server of a killed replica is not nil")
	}
	insertIDs(t, conns[0][0], "h.t_local", 10, 20)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Restart(ctx, 0, 1); err != nil {
		t.Fatal(err)
	}
	if got := c.Server(0, 1).Addr(); got != c.Addr(0, 1) {
		t.Fatalf("restarted on %s, want %s", got, c.Addr(0, 1))
	}
	restarted := connect(t, c.Addr(0, 1))
	if got := macros(t, restarted); got != "01 r2" {
		t.Fatalf("macros after restart = %q, want 01 r2", got)
	}
	waitReplicated(t, c)
	wantCount(t, restarted, "h.t_local", 70)
}

// insertWithSettings inserts through a connection that sends
// insert_distributed_sync=1, so the insert returns once every shard has
// its rows.
func insertWithSettings(t *testing.T, addr, table string, from, to int) {
	t.Helper()
	conn := connectWith(t, addr, clickhouse.Settings{"insert_distributed_sync": 1})
	insertIDs(t, conn, table, from, to)
}

func TestReplicaConfig(t *testing.T) {
	var b strings.Builder
	(&ReplicaConfig{
		Cluster: "c1", Shards: [][]string{{"127.0.0.1:1", "127.0.0.1:2"}, {"127.0.0.1:3"}},
		ZooKeeper: []string{"127.0.0.1:9"}, SessionTimeout: 3 * time.Second,
		Shard: "01", Replica: "r2", InterserverPort: 7,
	}).write(&b)
	for _, want := range []string{
		"<interserver_http_port>7</interserver_http_port>",
		"<remote_servers><c1>",
		"<shard><internal_replication>true</internal_replication><replica><host>127.0.0.1</host><port>1</port></replica><replica><host>127.0.0.1</host><port>2</port></replica></shard>",
		"<shard><internal_replication>true</internal_replication><replica><host>127.0.0.1</host><port>3</port></replica></shard>",
		"<zookeeper><node><host>127.0.0.1</host><port>9</port></node><session_timeout_ms>3000</session_timeout_ms></zookeeper>",
		"<macros><shard>01</shard><replica>r2</replica></macros>",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("config lacks %s:\n%s", want, b.String())
		}
	}
}

func TestStartClusterValidates(t *testing.T) {
	_, err := StartCluster(context.Background(), ClusterOptions{Shards: 0, Replicas: 2}, nil)
	if err == nil {
		t.Fatal("StartCluster without Name, Dir, ZooKeeperAddr and shards: no error")
	}
	for _, want := range []string{"Name", "Shards", "Dir", "ZooKeeperAddr"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func connectWith(t *testing.T, addr string, settings clickhouse.Settings) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Protocol: clickhouse.Native, Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// macros returns a server's {shard} and {replica} macros (18.16 has no
// getMacro function, only system.macros).
func macros(t *testing.T, conn driver.Conn) string {
	t.Helper()
	var shard, replica string
	err := conn.QueryRow(context.Background(),
		"SELECT anyIf(substitution, macro = 'shard'), anyIf(substitution, macro = 'replica') FROM system.macros").Scan(&shard, &replica)
	if err != nil {
		t.Fatal(err)
	}
	return shard + " " + replica
}

package chclient_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

// testCluster is testenv's 2 shards x 2 replicas ClickHouse cluster: its
// name and its servers' native addresses in system.clusters order (shard
// 1 replica 1, shard 1 replica 2, shard 2 replica 1, shard 2 replica 2).
type testCluster struct {
	name  string
	addrs []string
}

// newClusterDatabase returns the shared test cluster and a database
// unique to the test on it, dropped from every server when the test ends.
func newClusterDatabase(t *testing.T) (testCluster, string) {
	t.Helper()
	name, addrs, db := testenv.NewClusterDatabase(t)
	if len(addrs) != 4 {
		t.Fatalf("cluster %s has %d servers, want 2 shards x 2 replicas", name, len(addrs))
	}
	return testCluster{name: name, addrs: addrs}, db
}

// newMigratedClusterDatabase is newClusterDatabase migrated ON CLUSTER
// (chclient.Migrate), with the admin connection (Config.OpenServer) to
// server 0 that ran it, closed when the test ends.
func newMigratedClusterDatabase(t *testing.T) (testCluster, string, driver.Conn) {
	t.Helper()
	c, db := newClusterDatabase(t)
	cfg := c.config(0, db)
	admin, err := cfg.OpenServer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	if _, err := chclient.Migrate(t.Context(), admin, db); err != nil {
		t.Fatal(err)
	}
	return c, db, admin
}

// config is the Config a service of the cluster runs with, connected to
// server i: the quorum is every replica of a shard (CheckCluster), as
// testenv.ClusterDB.Config gives it.
func (c testCluster) config(i int, db string) chclient.Config {
	return testenv.ClusterDB{Name: c.name, Addrs: c.addrs, Database: db}.Config(i, 4)
}

// serverConn is a plain connection to server i, closed when the test
// ends: what reads one server's local tables.
func serverConn(t *testing.T, c testCluster, i int, db string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{c.addrs[i]}, Protocol: clickhouse.Native,
		Auth: clickhouse.Auth{Database: db, Username: "default"}, DialTimeout: 5 * time.Second, ReadTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// createClusterLayout creates the cluster_layout table of migration 0024
// alone, rendered for the cluster as chclient.Migrate renders it, for the
// tests of the layout record that run without the other migrations.
func createClusterLayout(t *testing.T, c testCluster, db string, conn driver.Conn) {
	t.Helper()
	migrations, err := schemas.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations {
		if m.Name != "cluster_layout" {
			continue
		}
		stmts, err := m.Render(schemas.Target{Database: db, Cluster: c.name})
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range stmts {
			if err := conn.Exec(t.Context(), q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		return
	}
	t.Fatal("no migration named cluster_layout")
}

func count(t *testing.T, conn driver.Conn, sql string, args ...any) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// syncReplicas waits on every server until its replica of table has
// fetched what the other replica of its shard has (SYSTEM SYNC REPLICA),
// so that a read of the local table sees what was inserted before,
// whichever replica took it, without waiting for a time.
func syncReplicas(t *testing.T, c testCluster, db, table string) {
	t.Helper()
	for i := range c.addrs {
		if err := serverConn(t, c, i, db).Exec(t.Context(), "SYSTEM SYNC REPLICA "+db+"."+table); err != nil {
			t.Fatalf("sync %s on %s: %v", table, c.addrs[i], err)
		}
	}
}

// TestMigrateOnCluster: migrations run once for the whole cluster (a
// second run applies nothing), every table is on every server as a
// Replicated T_local and a Distributed T, every view feeds local tables,
// the versions are recorded cluster-wide, and a row inserted through a
// Distributed table is on one shard, on both its replicas, with what the
// views derive from it.
func TestMigrateOnCluster(t *testing.T) {
	c, db := newClusterDatabase(t)
	ctx := t.Context()
	cfg := c.config(0, db)
	admin, err := cfg.OpenServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	migrations, err := schemas.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	applied, err := chclient.Migrate(ctx, admin, db)
	if err != nil || len(applied) != len(migrations) {
		t.Fatalf("first Migrate: %d of %d applied, %v", len(applied), len(migrations), err)
	}
	// From another server, as another process would.
	otherCfg := c.config(3, db)
	other, err := otherCfg.OpenServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	syncReplicas(t, c, db, "schema_migrations_local")
	if applied, err := chclient.Migrate(ctx, other, db); err != nil || len(applied) != 0 {
		t.Fatalf("second Migrate from another server: applied %d, %v; want nothing", len(applied), err)
	}

	for i := range c.addrs {
		conn := serverConn(t, c, i, "default")
		if n := count(t, conn, "SELECT count(DISTINCT version) FROM "+db+".schema_migrations"); n != uint64(len(migrations)) {
			t.Errorf("%s: schema_migrations holds %d versions, want %d", c.addrs[i], n, len(migrations))
		}
		for _, m := range migrations {
			if m.ShardBy == "" {
				continue
			}
			table := strings.Fields(strings.SplitN(m.SQL, "CREATE TABLE IF NOT EXISTS ", 2)[1])[0]
			var engine, full string
			if err := conn.QueryRow(ctx, "SELECT engine, engine_full FROM system.tables WHERE database = ? AND name = ?", db, table).Scan(&engine, &full); err != nil || engine != "Distributed" ||
				!strings.Contains(full, fmt.Sprintf("Distributed(%s, %s, %s_local, %s)", c.name, db, table, m.ShardBy)) {
				t.Errorf("%s: %s is %q (%v), want Distributed over %s_local by %s", c.addrs[i], table, full, err, table, m.ShardBy)
			}
			if err := conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = ?", db, table+"_local").Scan(&engine); err != nil ||
				!strings.HasPrefix(engine, "Replicated") {
				t.Errorf("%s: %s_local is %q (%v), want a Replicated engine", c.addrs[i], table, engine, err)
			}
		}
		for _, view := range []string{"event_identities_feed", "readings_by_day_feed", "readings_by_customer_feed"} {
			if n := count(t, conn, "SELECT count() FROM system.tables WHERE database = ? AND name = ? AND engine = 'MaterializedView'", db, view); n != 1 {
				t.Errorf("%s: no view %s", c.addrs[i], view)
			}
		}
	}

	// A row through the Distributed table of server 0, as a service
	// writes it: on both replicas of one shard, and fed to
	// event_identities there.
	svc, err := cfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	batch, err := svc.PrepareBatch(svc.(*chclient.Conn).WithSessionSettings(ctx),
		"INSERT INTO events (org_id, customer_id, id, time, kafka_partition, kafka_offset)")
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.Append("org_1", "customer_1", "event_1", time.Now().UTC(), int32(0), int64(7)); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	var holders []int
	for i := range c.addrs {
		conn := serverConn(t, c, i, db)
		events := count(t, conn, "SELECT count() FROM events_local WHERE id = 'event_1'")
		identities := count(t, conn, "SELECT count() FROM event_identities_local WHERE id = 'event_1' AND kafka_offset = 7")
		if events != identities || events > 1 {
			t.Errorf("%s: %d rows in events_local, %d in event_identities_local; want the same, 0 or 1", c.addrs[i], events, identities)
		}
		if events == 1 {
			holders = append(holders, i)
		}
		if n := count(t, conn, "SELECT count() FROM events WHERE id = 'event_1'"); n != 1 {
			t.Errorf("%s: the Distributed events table holds %d rows of the event, want 1", c.addrs[i], n)
		}
	}
	// The quorum (2) made both replicas of the shard hold it when the
	// insert returned.
	if len(holders) != 2 || holders[1] != holders[0]+1 || holders[0]%2 != 0 {
		t.Errorf("the row is on servers %v, want both replicas of one shard (0 and 1, or 2 and 3)", holders)
	}
}

// TestCheckCluster: a service refuses to start on a cluster the server
// does not know, or with a quorum that is not every replica of a shard.
func TestCheckCluster(t *testing.T) {
	name, addrs := testenv.Cluster(t)
	c := testCluster{name: name, addrs: addrs}
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		change func(*chclient.Config)
		want   string
	}{
		{"unknown cluster", func(cfg *chclient.Config) { cfg.Cluster = "no_such_cluster" }, "is not a cluster of the server"},
		{"no quorum", func(cfg *chclient.Config) { cfg.InsertQuorum = 0 }, "set clickhouse.insert-quorum=2"},
		{"quorum of one", func(cfg *chclient.Config) { cfg.InsertQuorum = 1 }, "set clickhouse.insert-quorum=2"},
		{"quorum above the replicas", func(cfg *chclient.Config) { cfg.InsertQuorum = 3 }, "every insert would fail"},
	} {
		cfg := c.config(0, "default")
		tc.change(&cfg)
		conn, err := cfg.Open(ctx)
		if err == nil {
			_ = conn.Close()
		}
		if !errors.Is(err, chclient.ErrClusterUnfit) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Open: %v, want ErrClusterUnfit saying %q", tc.name, err, tc.want)
		}
	}
	cfg := c.config(0, "default")
	conn, err := cfg.Open(ctx)
	if err != nil {
		t.Fatalf("Open with the quorum at every replica: %v", err)
	}
	_ = conn.Close()
}

// TestDDLOnClusterFailsWhereAServerFails: a statement ON CLUSTER answers a
// row per server; one whose status is an error fails the migration, with
// what the server said.
func TestDDLOnClusterFailsWhereAServerFails(t *testing.T) {
	c, db := newClusterDatabase(t)
	conn := serverConn(t, c, 0, "default")
	target := schemas.Target{Database: db, Cluster: c.name}
	if err := chclient.ExecDDL(t.Context(), conn, target, "CREATE DATABASE IF NOT EXISTS "+db+" ON CLUSTER "+c.name); err != nil {
		t.Fatal(err)
	}
	err := chclient.ExecDDL(t.Context(), conn, target, "CREATE TABLE "+db+".t ON CLUSTER "+c.name+" (a UInt8) ENGINE = NoSuchEngine")
	if err == nil || !strings.Contains(err.Error(), "NoSuchEngine") {
		t.Errorf("a CREATE TABLE every server refuses: %v, want their error", err)
	}
}

package chclient_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/schemas"
)

// migrateUpToOnCluster leaves db on the cluster as a runner of an earlier
// version would have: the migrations before version applied ON CLUSTER
// and recorded. It returns the migration connection (server 0).
func migrateUpToOnCluster(t *testing.T, c testCluster, db string, version int) driver.Conn {
	t.Helper()
	ctx := t.Context()
	cfg := c.config(0, db)
	admin, err := cfg.OpenServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	target := schemas.Target{Database: db, Cluster: c.name}
	if err := chclient.ExecDDL(ctx, admin, target, "CREATE DATABASE IF NOT EXISTS "+db+" ON CLUSTER "+c.name); err != nil {
		t.Fatal(err)
	}
	if err := chclient.ExecRendered(ctx, admin, target, chclient.SchemaMigrationsTable); err != nil {
		t.Fatal(err)
	}
	migrations, err := schemas.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations {
		if m.Version >= version {
			break
		}
		if err := chclient.ExecRendered(ctx, admin, target, m.SQL); err != nil {
			t.Fatalf("migration %d: %v", m.Version, err)
		}
		if err := chclient.RecordMigration(ctx, admin, db, m); err != nil {
			t.Fatal(err)
		}
	}
	return admin
}

// copyReadings is how many readings writeReadingsBeforeCopy writes.
const copyReadings = 200

// writeReadingsBeforeCopy writes copyReadings readings of org_1 through
// server 1 as a service does (its session settings), in two months and
// for 17 customers (so on both shards), for a copy migration to copy.
func writeReadingsBeforeCopy(t *testing.T, c testCluster, db string) {
	t.Helper()
	ctx := t.Context()
	cfg := c.config(1, db)
	writer, err := cfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	const n = copyReadings
	batch, err := writer.PrepareBatch(writer.(*chclient.Conn).WithSessionSettings(ctx),
		"INSERT INTO readings (org_id, meter_key, customer_id, event_id, time)")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		month := time.Date(2026, time.Month(10+i%2), 15, 0, 0, 0, 0, time.UTC)
		if err := batch.Append("org_1", "m", fmt.Sprintf("customer_%d", i%17), fmt.Sprintf("event_%d", i), month); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}

// TestCopyOnClusterWaitsForInsertOnAnotherServer: a copy migration run
// from one server waits for an INSERT into its source that is open on
// another server of the cluster (here of the other shard), and fails
// after the wait while it stays open; once it has ended the migrations
// complete.
func TestCopyOnClusterWaitsForInsertOnAnotherServer(t *testing.T) {
	c, db := newClusterDatabase(t)
	ctx := t.Context()
	admin := migrateUpToOnCluster(t, c, db, 17)
	cfg := c.config(3, db)
	writer, err := cfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	open, err := writer.PrepareBatch(ctx, "INSERT INTO readings (org_id)")
	if err != nil {
		t.Fatal(err)
	}
	waits := 0
	applied, err := chclient.MigrateWith(ctx, admin, db, chclient.MigrateOptions{InsertWait: time.Second,
		OnWait: func(m schemas.Migration, running int) {
			if m.Version != 17 || running < 1 {
				t.Errorf("waiting in migration %d for %d INSERTs, want 17 and at least 1", m.Version, running)
			}
			waits++
		}})
	if err == nil || !strings.Contains(err.Error(), "migration 0017_readings_by_day_backfill") ||
		!strings.Contains(err.Error(), "still run after 1s") || !strings.Contains(err.Error(), c.addrs[3][strings.LastIndex(c.addrs[3], ":"):]+"/") {
		t.Errorf("Migrate with an INSERT into readings open on %s: %v, want migration 0017's error naming it", c.addrs[3], err)
	}
	if len(applied) != 0 || waits == 0 {
		t.Errorf("applied %v after %d waits, want nothing applied after some", applied, waits)
	}
	if err := open.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := chclient.Migrate(ctx, admin, db); err != nil {
		t.Errorf("Migrate once the INSERT has ended: %v", err)
	}
}

// TestCopyOnCluster: the readings stored before the views of 0016 and
// 0019 existed, in two months and on both shards, are all in
// readings_by_day and readings_by_customer after the copies, each on the
// shard of its reading (so FINAL folds a reading the view wrote with its
// copy), and exactly once each as FINAL reads them.
func TestCopyOnCluster(t *testing.T) {
	c, db := newClusterDatabase(t)
	ctx := t.Context()
	admin := migrateUpToOnCluster(t, c, db, 16)
	const n = copyReadings
	writeReadingsBeforeCopy(t, c, db)
	if _, err := chclient.Migrate(ctx, admin, db); err != nil {
		t.Fatal(err)
	}
	syncReplicas(t, c, db, "readings_by_day_local")
	syncReplicas(t, c, db, "readings_by_customer_local")
	var shards [2]uint64
	for i := range c.addrs {
		conn := serverConn(t, c, i, db)
		readings := count(t, conn, "SELECT count() FROM readings_local FINAL")
		shards[i/2] = readings
		for _, table := range []string{"readings_by_day", "readings_by_customer"} {
			if got := count(t, conn, "SELECT count() FROM "+table+"_local FINAL"); got != readings {
				t.Errorf("%s: %d rows in %s_local, %d in readings_local: want the copy on the shard of its reading", c.addrs[i], got, table, readings)
			}
			if got := count(t, conn, "SELECT count() FROM "+table+" FINAL"); got != n {
				t.Errorf("%s: %s FINAL counts %d readings, want %d", c.addrs[i], table, got, n)
			}
		}
	}
	if shards[0] == 0 || shards[1] == 0 || shards[0]+shards[1] != n {
		t.Errorf("readings per shard %v: want both shards to hold some, %d in all", shards, n)
	}
}

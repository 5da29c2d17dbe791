package chclient_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

// migrateUpTo applies and records the migrations before version, as the
// runner does (every copy waits for nothing here: nothing is open).
func migrateUpTo(t *testing.T, admin driver.Conn, db string, version int) {
	t.Helper()
	ctx := t.Context()
	migrations, err := schemas.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+db+
		".schema_migrations (version UInt32, name String, applied_at DateTime('UTC')) ENGINE = ReplacingMergeTree ORDER BY version"); err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations {
		if m.Version >= version {
			break
		}
		if err := admin.Exec(ctx, schemas.QualifyTables(m.SQL, db)); err != nil {
			t.Fatalf("migration %d: %v", m.Version, err)
		}
		if err := admin.Exec(ctx, "INSERT INTO "+db+".schema_migrations SELECT "+strconv.Itoa(m.Version)+", '"+m.Name+"', now()"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCopyRefusesWhileInsertStaysOpen: a copy migration does not run while
// an INSERT into its source that was open before it started is still
// open; after the wait it fails with an error that says so, and records
// nothing from the copy on. An INSERT into another table whose name starts
// alike (readings_by_day for readings) is not waited for.
func TestCopyRefusesWhileInsertStaysOpen(t *testing.T) {
	addr, db := testenv.NewDatabase(t)
	admin := testenv.Conn(t, addr, "default")
	conn := testenv.Conn(t, addr, db)
	ctx := t.Context()
	migrateUpTo(t, admin, db, 17)
	other, err := conn.PrepareBatch(ctx, "INSERT INTO readings_by_day (org_id)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Abort()
	open, err := conn.PrepareBatch(ctx, "INSERT INTO readings (org_id)")
	if err != nil {
		t.Fatal(err)
	}
	waits := 0
	applied, err := chclient.MigrateWith(ctx, admin, db, chclient.MigrateOptions{InsertWait: time.Second,
		OnWait: func(m schemas.Migration, running int) {
			if m.Version != 17 || running != 1 {
				t.Errorf("waiting in migration %d for %d INSERTs, want 17 and 1", m.Version, running)
			}
			waits++
		}})
	if err == nil || !strings.Contains(err.Error(), "migration 0017_readings_by_day_backfill") || !strings.Contains(err.Error(), "still run after 1s") {
		t.Errorf("Migrate with an INSERT into readings open: %v, want migration 0017's error about it", err)
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

package usage

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

// The copy migrations (0014, 0017, 0020 and their repeats) fill the target
// of a materialized view with the rows stored before the view existed.
// ClickHouse binds an INSERT to the views that exist when it is prepared,
// so an INSERT into the source prepared before the view (an aggregator of
// the previous version writing while the migrate Job of a Kubernetes
// upgrade runs) writes the source only, however late its block arrives:
// the copy must not run before that INSERT has ended (review 7a, F1/F3).

// applyMigrations runs the migrations keep selects directly, as a runner
// that does not wait for open INSERTs would, and records them when record
// is set.
func applyMigrations(t *testing.T, admin driver.Conn, db string, record bool, keep func(v int) bool) {
	t.Helper()
	ctx := t.Context()
	migrations, err := schemas.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if record {
		if err := admin.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+db+
			".schema_migrations (version UInt32, name String, applied_at DateTime('UTC')) ENGINE = ReplacingMergeTree ORDER BY version"); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range migrations {
		if !keep(m.Version) {
			continue
		}
		if err := admin.Exec(ctx, schemas.QualifyTables(m.SQL, db)); err != nil {
			t.Fatalf("migration %d: %v", m.Version, err)
		}
		if record {
			if err := admin.Exec(ctx, fmt.Sprintf("INSERT INTO %s.schema_migrations SELECT %d, '%s', now()", db, m.Version, m.Name)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// migrateWhileInsertOpen runs chclient.Migrate while batch, an INSERT
// prepared before, is open, and sends batch's block once Migrate either
// waits for it or has returned (a runner that does not wait): the order
// of the race, without timing.
func migrateWhileInsertOpen(t *testing.T, admin driver.Conn, db string, batch driver.Batch) {
	t.Helper()
	waiting := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		_, err := chclient.MigrateWith(context.Background(), admin, db, chclient.MigrateOptions{
			InsertWait: 2 * time.Minute,
			OnWait: func(schemas.Migration, int) {
				select {
				case waiting <- struct{}{}:
				default:
				}
			},
		})
		done <- err
	}()
	var err error
	migrated := false
	select {
	case <-waiting:
	case err = <-done:
		migrated = true
	}
	if sendErr := batch.Send(); sendErr != nil {
		t.Fatal(sendErr)
	}
	if !migrated {
		err = <-done
	}
	if err != nil {
		t.Fatal(err)
	}
}

func prepareReadingsInsert(t *testing.T, conn driver.Conn, customer, id string, at time.Time, value string) driver.Batch {
	t.Helper()
	batch, err := conn.PrepareBatch(t.Context(), `INSERT INTO readings (org_id, meter_key, meter_revision, customer_id, event_id,
		time, time_ns, value, distinct_value, group_keys, group_values, ingested_at)`)
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.Append("acme", "tokens", uint64(1), customer, id, at, at.UnixNano(),
		decimal.RequireFromString(value), "", []string{}, []string{}, at); err != nil {
		t.Fatal(err)
	}
	return batch
}

func prepareEventsInsert(t *testing.T, conn driver.Conn, id string, at time.Time, offset int64) driver.Batch {
	t.Helper()
	batch, err := conn.PrepareBatch(t.Context(), `INSERT INTO events (org_id, customer_id, id, type, source, time, time_ns,
		properties, ingested_at, kafka_partition, kafka_offset)`)
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.Append("acme", "c1", id, "t", "", at, at.UnixNano(), `{}`, at, int32(0), offset); err != nil {
		t.Fatal(err)
	}
	return batch
}

func countRows(t *testing.T, conn driver.Conn, table string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(t.Context(), "SELECT count() FROM "+table+" FINAL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCopyWaitsForReadingsInsertOpenBeforeFeed: a readings INSERT prepared
// before 0015-0020 and sent while they run reaches readings_by_day and
// readings_by_customer, and usage of every customer (readings_by_day)
// equals the customer's (readings_by_customer).
func TestCopyWaitsForReadingsInsertOpenBeforeFeed(t *testing.T) {
	addr, db := testenv.NewDatabase(t)
	admin := testenv.Conn(t, addr, "default")
	conn := testenv.Conn(t, addr, db)
	ctx := t.Context()
	applyMigrations(t, admin, db, true, func(v int) bool { return v < 15 }) // the store before
	at := time.Date(2026, 10, 20, 10, 0, 0, 0, time.UTC)
	testenv.InsertReadings(t, conn, testenv.Reading{Org: "acme", Meter: "tokens", Revision: 1,
		Customer: "c2", EventID: "stored", Time: at.AddDate(0, -1, 0), Value: "3"})
	batch := prepareReadingsInsert(t, conn, "c1", "open", at, "5")
	migrateWhileInsertOpen(t, admin, db, batch)

	want := readingRows(t, conn, "readings")
	if len(want) != 2 {
		t.Fatalf("readings FINAL holds %d rows, want 2", len(want))
	}
	for _, table := range []string{"readings_by_day", "readings_by_customer"} {
		if got := readingRows(t, conn, table); !slices.Equal(got, want) {
			t.Errorf("%s FINAL\n%v\nwant readings FINAL\n%v", table, got, want)
		}
	}
	reader := NewClickHouseReader(conn, 1000, nil)
	q := Query{OrgID: "acme", MeterKey: "tokens", Revision: 1, Aggregation: schemas.AggSum,
		From: at.Add(-time.Hour), To: at.Add(time.Hour), WindowSize: WindowDay, Location: time.UTC}
	all, err := reader.Read(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	q.CustomerIDs = []string{"c1"}
	one, err := reader.Read(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(all) != fmt.Sprint(one) || len(one) != 1 {
		t.Errorf("usage of every customer %v, want c1's %v (one day)", all, one)
	}
}

// TestCopyWaitsForEventsInsertOpenBeforeFeed: an events INSERT prepared
// before 0012-0014 and sent while they run reaches event_identities, where
// the first-version lookup finds it.
func TestCopyWaitsForEventsInsertOpenBeforeFeed(t *testing.T) {
	addr, db := testenv.NewDatabase(t)
	admin := testenv.Conn(t, addr, "default")
	conn := testenv.Conn(t, addr, db)
	applyMigrations(t, admin, db, true, func(v int) bool { return v < 12 })
	at := time.Date(2026, 10, 20, 10, 0, 0, 0, time.UTC)
	batch := prepareEventsInsert(t, conn, "e1", at, 7)
	migrateWhileInsertOpen(t, admin, db, batch)
	if events, identities := countRows(t, conn, "events"), countRows(t, conn, "event_identities"); events != 1 || identities != 1 {
		t.Errorf("events holds %d rows, event_identities %d, want 1 and 1: the first-version lookup cannot see the stored event", events, identities)
	}
}

// TestRecopyRepairsStoreMigratedWithoutWait: a store whose copies (0014,
// 0017, 0020) ran before the runner waited for open INSERTs, and missed
// one each, has every row in every copy after 0021-0023; a store
// migrated in one run skips them (recorded, not run).
func TestRecopyRepairsStoreMigratedWithoutWait(t *testing.T) {
	addr, db := testenv.NewDatabase(t)
	admin := testenv.Conn(t, addr, "default")
	conn := testenv.Conn(t, addr, db)
	ctx := t.Context()
	applyMigrations(t, admin, db, true, func(v int) bool { return v < 12 })
	at := time.Date(2026, 10, 20, 10, 0, 0, 0, time.UTC)
	events := prepareEventsInsert(t, conn, "e1", at, 7)
	readings := prepareReadingsInsert(t, conn, "c1", "e1", at, "5")
	applyMigrations(t, admin, db, true, func(v int) bool { return v >= 12 && v <= 20 }) // the runner before
	if err := events.Send(); err != nil {
		t.Fatal(err)
	}
	if err := readings.Send(); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, conn, "event_identities"); n != 0 {
		t.Fatalf("event_identities holds %d rows before the repair, want 0 (the race)", n)
	}
	applied, err := chclient.Migrate(ctx, admin, db)
	if err != nil {
		t.Fatal(err)
	}
	var versions []int
	for _, m := range applied {
		versions = append(versions, m.Version)
	}
	if !slices.Contains(versions, 21) || !slices.Contains(versions, 22) || !slices.Contains(versions, 23) {
		t.Errorf("applied %v, want 21, 22 and 23", versions)
	}
	if n := countRows(t, conn, "event_identities"); n != 1 {
		t.Errorf("event_identities holds %d rows after the repair, want 1", n)
	}
	want := readingRows(t, conn, "readings")
	for _, table := range []string{"readings_by_day", "readings_by_customer"} {
		if got := readingRows(t, conn, table); !slices.Equal(got, want) || len(want) != 1 {
			t.Errorf("%s FINAL\n%v\nwant readings FINAL\n%v", table, got, want)
		}
	}
}

// TestUpgradeFromMigration14: a store written by a version whose last
// migration was 0014 (a `make run` data directory from before the copies
// of readings) upgrades in one run: every event in event_identities
// (0021 copies it again), every reading in both copies, and usage with
// and without a customer filter agrees.
func TestUpgradeFromMigration14(t *testing.T) {
	addr, db := testenv.NewDatabase(t)
	admin := testenv.Conn(t, addr, "default")
	conn := testenv.Conn(t, addr, db)
	ctx := t.Context()
	applyMigrations(t, admin, db, true, func(v int) bool { return v <= 14 })
	at := time.Date(2026, 10, 20, 10, 0, 0, 0, time.UTC)
	for i := range 6 {
		if err := prepareEventsInsert(t, conn, fmt.Sprintf("e%d", i), at.AddDate(0, -i, 0), int64(i)).Send(); err != nil {
			t.Fatal(err)
		}
		testenv.InsertReadings(t, conn, testenv.Reading{Org: "acme", Meter: "tokens", Revision: 1,
			Customer: fmt.Sprintf("c%d", i%2), EventID: fmt.Sprintf("e%d", i), Time: at.AddDate(0, -i, 0), Value: "2.5"})
	}
	applied, err := chclient.Migrate(ctx, admin, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 10 || applied[0].Version != 15 || applied[9].Version != 24 {
		t.Errorf("applied %d migrations, want 15 to 24", len(applied))
	}
	if events, identities := countRows(t, conn, "events"), countRows(t, conn, "event_identities"); events != 6 || identities != 6 {
		t.Errorf("events %d, event_identities %d, want 6 and 6", events, identities)
	}
	want := readingRows(t, conn, "readings")
	for _, table := range []string{"readings_by_day", "readings_by_customer"} {
		if got := readingRows(t, conn, table); !slices.Equal(got, want) || len(want) != 6 {
			t.Errorf("%s FINAL\n%v\nwant readings FINAL\n%v", table, got, want)
		}
	}
	reader := NewClickHouseReader(conn, 1000, nil)
	q := Query{OrgID: "acme", MeterKey: "tokens", Revision: 1, Aggregation: schemas.AggSum,
		From: at.AddDate(0, -6, 0), To: at.Add(time.Hour), Location: time.UTC}
	all, err := reader.Read(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	q.CustomerIDs = []string{"c0", "c1"}
	named, err := reader.Read(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].Value.String() != "15" || fmt.Sprint(all) != fmt.Sprint(named) {
		t.Errorf("usage of every customer %v, of c0 and c1 %v, want 15 both", all, named)
	}
}

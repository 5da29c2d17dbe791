package usage

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

// TestReadingsCopiesMigration upgrades a store written before migrations
// 0015-0020 (readings_by_day and readings_by_customer, their feeds and
// their copies): afterwards each copy read with FINAL holds exactly the
// rows of readings FINAL (every column), duplicates of a retried insert
// included; so it does after the copies ran again (a crash before they
// were recorded) and after a crash between the feeds and the copies; a
// reading inserted after the migration reaches every table; and usage read
// with and without a customer filter (one copy each) agrees.
func TestReadingsCopiesMigration(t *testing.T) {
	addr, db := testenv.NewDatabase(t)
	admin := testenv.Conn(t, addr, "default")
	conn := testenv.Conn(t, addr, db)
	ctx := t.Context()
	migrations, err := schemas.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	apply := func(keep func(v int) bool) {
		t.Helper()
		for _, m := range migrations {
			if keep(m.Version) {
				if err := admin.Exec(ctx, schemas.QualifyTables(m.SQL, db)); err != nil {
					t.Fatalf("migration %d: %v", m.Version, err)
				}
			}
		}
	}
	apply(func(v int) bool { return v < 15 }) // the schema before the copies

	day := func(d, h int) time.Time { return time.Date(2026, 10, d, h, 30, 0, 123_000_000, time.UTC) }
	var before []testenv.Reading
	for i := range 40 {
		before = append(before, testenv.Reading{Org: "acme", Meter: "tokens", Revision: 1,
			Customer: fmt.Sprintf("c%d", i%4), EventID: fmt.Sprintf("e%02d", i), Time: day(20+i%10, i%24),
			Value: fmt.Sprintf("%d.25", i), Distinct: fmt.Sprintf("u%d", i%3),
			Groups: map[string]string{"region": []string{"eu", "us"}[i%2]}})
	}
	testenv.InsertReadings(t, conn, before...)
	testenv.InsertReadings(t, conn, before[:10]...) // a retried insert

	// A crash after the feeds were created, before they were recorded or
	// the copies ran: a reading stored then reaches each copy twice (feed
	// and copy).
	apply(func(v int) bool { return v == 15 || v == 16 || v == 18 || v == 19 })
	between := testenv.Reading{Org: "acme", Meter: "tokens", Revision: 1, Customer: "c9", EventID: "between",
		Time: day(25, 3), Value: "7"}
	testenv.InsertReadings(t, conn, between)
	if _, err := chclient.Migrate(ctx, admin, db); err != nil {
		t.Fatal(err)
	}
	want := readingRows(t, conn, "readings")
	if len(want) != len(before)+1 {
		t.Fatalf("readings FINAL holds %d rows, want %d", len(want), len(before)+1)
	}
	same := func(when string) {
		t.Helper()
		for _, table := range []string{"readings_by_day", "readings_by_customer"} {
			if got := readingRows(t, conn, table); !slices.Equal(got, want) {
				t.Errorf("%s: %s FINAL\n%v\nwant readings FINAL\n%v", when, table, got, want)
			}
		}
	}
	same("after the migration")

	apply(func(v int) bool { return v == 17 || v == 20 }) // the copies again: a crash before they were recorded
	same("after the copies ran twice")

	after := testenv.Reading{Org: "acme", Meter: "tokens", Revision: 1, Customer: "c1", EventID: "after",
		Time: day(26, 23), Value: "1000"}
	testenv.InsertReadings(t, conn, after)
	want = readingRows(t, conn, "readings")
	if len(want) != len(before)+2 {
		t.Fatalf("readings FINAL holds %d rows, want %d", len(want), len(before)+2)
	}
	same("after an insert into readings")

	// Usage of every customer read from readings_by_day equals each
	// customer's usage read from readings_by_customer.
	reader := NewClickHouseReader(conn, 1000, nil)
	q := Query{OrgID: "acme", MeterKey: "tokens", Revision: 1, Aggregation: schemas.AggSum,
		From: day(20, 0), To: day(30, 0), WindowSize: WindowDay, Location: mustZone(t, "Europe/Berlin"),
		GroupBy: []string{schemas.CustomerGroupKey, "region"}}
	all, err := reader.Read(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var each []Row
	for _, c := range []string{"c0", "c1", "c2", "c3", "c9"} {
		q.CustomerIDs = []string{c}
		rows, err := reader.Read(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		each = append(each, rows...)
	}
	key := func(r Row) string { return fmt.Sprint(r.WindowStart.Unix(), r.GroupValues) }
	slices.SortFunc(all, func(a, b Row) int { return compareStrings(key(a), key(b)) })
	slices.SortFunc(each, func(a, b Row) int { return compareStrings(key(a), key(b)) })
	if fmt.Sprint(all) != fmt.Sprint(each) || len(all) == 0 {
		t.Errorf("usage of every customer (readings_by_day)\n%v\nwant each customer's (readings_by_customer)\n%v", all, each)
	}
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readingRows returns every column of table FINAL but ingested_at, one
// string a row, sorted. testenv.InsertReadings stamps ingested_at with the
// clock, so its retried insert may differ there, and FINAL keeps either
// row; the aggregator's retried rows are identical in every column.
func readingRows(t *testing.T, conn driver.Conn, table string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT concat(org_id, '|', meter_key, '|', toString(meter_revision), '|',
		customer_id, '|', event_id, '|', toString(time), '|', toString(time_ns), '|', toString(value), '|', distinct_value, '|',
		arrayStringConcat(group_keys, ','), '|', arrayStringConcat(group_values, ','))
		FROM `+table+` FINAL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

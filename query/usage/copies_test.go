package usage

import (
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

// TestUsageWhileCopiesRun: a query service that does not migrate (the
// Kubernetes manifests run migrations in a Job) may serve while the Job is
// between the feeds of readings_by_day and readings_by_customer and the end
// of their copies (minutes at 100 million readings), or after the Job
// failed there. Usage then reads readings, and gives readings' answer with
// and without a customer filter; once the copies are recorded it reads
// them, with the same answer (review 7a, F2).
func TestUsageWhileCopiesRun(t *testing.T) {
	addr, db := testenv.NewDatabase(t)
	admin := testenv.Conn(t, addr, "default")
	conn := testenv.Conn(t, addr, db)
	ctx := t.Context()
	applyMigrations(t, admin, db, true, func(v int) bool { return v < 15 })
	at := time.Date(2026, 10, 20, 10, 0, 0, 0, time.UTC)
	testenv.InsertReadings(t, conn, testenv.Reading{Org: "acme", Meter: "tokens", Revision: 1,
		Customer: "c1", EventID: "e1", Time: at, Value: "5"})
	// The Job, before its copies complete: the tables and their feeds.
	applyMigrations(t, admin, db, false, func(v int) bool { return v == 15 || v == 16 || v == 18 || v == 19 })

	reader := NewClickHouseReader(conn, 1000, nil) // a new query pod (migrate=false)
	reader.copies.recheck = 0                      // check at every read
	q := Query{OrgID: "acme", MeterKey: "tokens", Revision: 1, Aggregation: schemas.AggSum,
		From: at.Add(-time.Hour), To: at.Add(time.Hour), WindowSize: WindowDay, Location: time.UTC}
	read := func(when string, customers ...string) {
		t.Helper()
		q.CustomerIDs = customers
		rows, err := reader.Read(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Value.String() != "5" || rows[0].Events != 1 {
			t.Errorf("%s: usage of customers %v is %v, want 5 from 1 reading (readings' answer)", when, customers, rows)
		}
	}
	read("before the copies")
	read("before the copies", "c1")
	if reader.copies.ready != (copies{}) {
		t.Errorf("before the copies the reader reads %+v, want neither copy", reader.copies.ready)
	}

	if _, err := chclient.Migrate(ctx, admin, db); err != nil {
		t.Fatal(err)
	}
	read("after the copies")
	read("after the copies", "c1")
	if reader.copies.ready != allCopies {
		t.Errorf("after the copies the reader reads %+v, want both copies", reader.copies.ready)
	}
}

// TestSQLReadsReadingsUntilCopied: a copy not known complete is not read.
func TestSQLReadsReadingsUntilCopied(t *testing.T) {
	q := Query{OrgID: "acme", MeterKey: "tokens", Revision: 1, Aggregation: schemas.AggSum, Location: time.UTC,
		From: time.Unix(0, 0), To: time.Unix(3600, 0)}
	named := q
	named.CustomerIDs = []string{"c1"}
	for _, tt := range []struct {
		q     Query
		ready copies
		want  string
	}{
		{q, copies{}, " FROM readings FINAL "},
		{named, copies{}, " FROM readings FINAL "},
		{q, copies{byCustomer: true}, " FROM readings FINAL "},
		{named, copies{byDay: true}, " FROM readings FINAL "},
		{q, copies{byDay: true}, " FROM readings_by_day FINAL "},
		{named, copies{byCustomer: true}, " FROM readings_by_customer FINAL "},
	} {
		sql, _, err := buildSQLFrom(tt.q, 10, tt.ready)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(sql, tt.want) {
			t.Errorf("customers %v, copies %+v: %s, want%s", tt.q.CustomerIDs, tt.ready, sql, tt.want)
		}
	}
}

package aggregator

import (
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

// TestLookupMetrics: every lookup observes its duration, the rows
// ClickHouse read for it and those rows per key, whether it runs on a
// partition's session (database/sql) or on the pool; and it still finds
// what was stored.
func TestLookupMetrics(t *testing.T) {
	addr, db := testenv.NewMigratedDatabase(t)
	for _, session := range []bool{false, true} {
		t.Run(fmt.Sprintf("session=%v", session), func(t *testing.T) {
			reg := prometheus.NewRegistry()
			store := &clickhouseStore{conn: testenv.Conn(t, addr, db), metrics: newMetrics(reg)}
			ctx := t.Context()
			if session {
				store.sessions = newSessions(func() *sql.DB {
					return clickhouse.OpenDB(&clickhouse.Options{Addr: []string{addr}, Auth: clickhouse.Auth{Database: db, Username: "default"}})
				}, 1, reg)
				t.Cleanup(func() { _ = store.sessions.close() })
				ctx = withPartition(ctx, 0)
			}
			var rows []EventRow
			var keys []EventKey
			for i := range 100 {
				k := EventKey{OrgID: testOrg, CustomerID: fmt.Sprintf("c-%v-%d", session, i%7), ID: fmt.Sprintf("e-%d", i)}
				keys = append(keys, k)
				rows = append(rows, EventRow{EventKey: k, Type: "api_call", Time: t0.Add(time.Duration(i) * time.Hour),
					Properties: "{}", IngestedAt: t0, Position: Position{Offset: int64(i)}})
			}
			if err := store.InsertEvents(ctx, rows); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, EventKey{OrgID: testOrg, CustomerID: "nobody", ID: "never"})
			got, err := store.StoredVersions(ctx, keys)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 100 || got[keys[42]][0].Offset != 42 {
				t.Fatalf("found %d of 100 stored keys; keys[42] at %v", len(got), got[keys[42]])
			}
			histogramSum(t, reg, "tally_aggregator_lookup_duration_seconds")
			read := histogramSum(t, reg, "tally_aggregator_lookup_rows_read")
			// At least the stored rows it found; at most the keys and
			// every stored row (this test's table is small).
			if read < 100 || read > 101+200 {
				t.Errorf("rows read %v, want between 100 and 301", read)
			}
			perKey := histogramSum(t, reg, "tally_aggregator_lookup_rows_read_per_key")
			if want := read / 101; perKey != want {
				t.Errorf("rows read per key %v, want %v", perKey, want)
			}
		})
	}
}

// TestLookupFindsEventsStoredBeforeMigration: the lookup reads
// event_identities, which a migration fills from the events stored before
// it (0014); an event stored before the migration is found afterwards, as
// is one stored after it (the materialized view of 0013).
func TestLookupFindsEventsStoredBeforeMigration(t *testing.T) {
	addr, db := testenv.NewDatabase(t)
	admin := testenv.Conn(t, addr, "default")
	ctx := t.Context()
	migrations, err := schemas.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations {
		if m.Version < 12 { // the schema before event_identities
			if err := admin.Exec(ctx, schemas.QualifyTables(m.SQL, db)); err != nil {
				t.Fatalf("migration %d: %v", m.Version, err)
			}
		}
	}
	store := &clickhouseStore{conn: testenv.Conn(t, addr, db), metrics: newMetrics(nil)}
	row := func(id string, offset int64) EventRow {
		return EventRow{EventKey: EventKey{OrgID: testOrg, CustomerID: "c", ID: id}, Type: "api_call",
			Time: t0, Properties: "{}", IngestedAt: t0, Position: Position{Partition: 2, Offset: offset}}
	}
	if err := store.InsertEvents(ctx, []EventRow{row("before", 7)}); err != nil {
		t.Fatal(err)
	}
	if _, err := chclient.Migrate(ctx, admin, db); err != nil {
		t.Fatal(err)
	}
	if err := store.InsertEvents(ctx, []EventRow{row("after", 8)}); err != nil {
		t.Fatal(err)
	}
	before, after := row("before", 0).EventKey, row("after", 0).EventKey
	got, err := store.StoredVersions(ctx, []EventKey{before, after, {OrgID: testOrg, CustomerID: "c", ID: "never"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[EventKey][]Position{before: {{Partition: 2, Offset: 7}}, after: {{Partition: 2, Offset: 8}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored versions %v, want %v", got, want)
	}
}

// histogramSum returns the sum of the one observation-bearing histogram
// named name, failing unless it holds exactly one observation.
func histogramSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	f := metricFamily(t, reg, name)
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
	h := f.GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 1 {
		t.Fatalf("%s: %d observations, want 1", name, h.GetSampleCount())
	}
	return h.GetSampleSum()
}

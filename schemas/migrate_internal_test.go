package schemas

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestQualifyTables(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"CREATE TABLE IF NOT EXISTS events (a String) ENGINE = Null",
			"CREATE TABLE IF NOT EXISTS tally_test.events (a String) ENGINE = Null"},
		{"create table if not exists readings (a String)",
			"CREATE TABLE IF NOT EXISTS tally_test.readings (a String)"},
		{"-- the events\nCREATE TABLE IF NOT EXISTS dead_letters (a String)",
			"-- the events\nCREATE TABLE IF NOT EXISTS tally_test.dead_letters (a String)"},
		{"CREATE MATERIALIZED VIEW IF NOT EXISTS feed TO ids\nAS SELECT a FROM events",
			"CREATE MATERIALIZED VIEW IF NOT EXISTS tally_test.feed TO tally_test.ids\nAS SELECT a FROM tally_test.events"},
		{"-- copied from events\nINSERT INTO ids (a)\nSELECT a FROM events WHERE 1",
			"-- copied from events\nINSERT INTO tally_test.ids (a)\nSELECT a FROM tally_test.events WHERE 1"},
		{"SELECT a FROM system.parts", "SELECT a FROM system.parts"},
	} {
		if got := QualifyTables(tc.in, "tally_test"); got != tc.want {
			t.Errorf("QualifyTables(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Every embedded migration names its table through the pattern that
	// qualifyTables rewrites.
	migrations, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations {
		if got := QualifyTables(m.SQL, "db_x"); got == m.SQL ||
			!createTable.MatchString(m.SQL) && !createView.MatchString(m.SQL) && !insertInto.MatchString(m.SQL) {
			t.Errorf("migration %04d_%s is not qualified by QualifyTables", m.Version, m.Name)
		}
	}
}

// TestMigrationsNeedShardingKeys: every CREATE TABLE carries its sharding
// key for cluster mode, and nothing else carries one.
func TestMigrationsNeedShardingKeys(t *testing.T) {
	table := "CREATE TABLE IF NOT EXISTS t (a String) ENGINE = MergeTree ORDER BY a"
	view := "CREATE MATERIALIZED VIEW IF NOT EXISTS v TO t AS SELECT a\nFROM s"
	for _, tc := range []struct {
		sql, wantErr string
	}{
		{table, "needs a \"-- tally:shard-by <expr>\" directive"},
		{"-- tally:shard-by cityHash64(a)\n" + table, ""},
		{"-- tally:shard-by cityHash64(a)\n" + view, "creates no table"},
		{view, ""},
	} {
		got, err := migrationsFrom(fstest.MapFS{"clickhouse/0001_t.sql": {Data: []byte(tc.sql)}})
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tc.sql, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: %v, want an error containing %q", tc.sql, err, tc.wantErr)
		case err == nil && strings.HasPrefix(tc.sql, "-- tally:shard-by") && got[0].ShardBy != "cityHash64(a)":
			t.Errorf("%q: ShardBy %q", tc.sql, got[0].ShardBy)
		}
	}
}

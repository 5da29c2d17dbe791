package chclient

import (
	"regexp"
	"slices"
	"testing"

	"github.com/tally-oss/tally/schemas"
)

func TestInsertPattern(t *testing.T) {
	re := regexp.MustCompile(insertPattern("tally", "readings"))
	for query, want := range map[string]bool{
		"INSERT INTO readings (org_id, meter_key) VALUES":                               true,
		"insert into readings(org_id)":                                                  true,
		"  INSERT INTO tally.readings FORMAT Native":                                    true,
		"INSERT INTO `tally`.`readings` (a)":                                            true,
		"-- a comment\nINSERT INTO readings (a)":                                        true,
		"/* a\ncomment */ INSERT INTO readings (a)":                                     true,
		"INSERT INTO readings":                                                          true,
		"INSERT INTO readings_by_day (org_id)":                                          false,
		"INSERT INTO other.readings (org_id)":                                           false,
		"INSERT INTO tally.readings_by_customer (a)":                                    false,
		"SELECT * FROM system.processes WHERE match(query, 'INSERT INTO readings')":     false,
		"-- 0017\nINSERT INTO tally.readings_by_day (a)\nSELECT a\nFROM tally.readings": false,
	} {
		if got := re.MatchString(query); got != want {
			t.Errorf("%q: matched %v, want %v", query, got, want)
		}
	}
}

// TestInsertPatternOnCluster: on a cluster the INSERTs into the
// Distributed table and into its local table are waited for, and still
// no other table's.
func TestInsertPatternOnCluster(t *testing.T) {
	re := regexp.MustCompile(insertPattern("tally", "readings", "readings_local"))
	for query, want := range map[string]bool{
		"INSERT INTO readings (org_id)":                      true,
		"INSERT INTO tally.readings_local (org_id) VALUES":   true,
		"INSERT INTO `tally`.`readings_local` FORMAT Native": true,
		"INSERT INTO readings_by_day_local (a)":              false,
		"INSERT INTO tally.readings_localx (a)":              false,
		"INSERT INTO other.readings_local (a)":               false,
	} {
		if got := re.MatchString(query); got != want {
			t.Errorf("%q: matched %v, want %v", query, got, want)
		}
	}
}

// TestSchemaMigrationsTable: one server keeps the table it always had; a
// cluster records versions in a replicated table behind a Distributed one.
func TestSchemaMigrationsTable(t *testing.T) {
	const columns = "(version UInt32, name String, applied_at DateTime('UTC'))"
	for target, want := range map[schemas.Target][]string{
		{Database: "tally"}: {"-- tally:shard-by version\nCREATE TABLE IF NOT EXISTS tally.schema_migrations " + columns +
			" ENGINE = ReplacingMergeTree ORDER BY version"},
		{Database: "tally", Cluster: "c"}: {
			"-- tally:shard-by version\nCREATE TABLE IF NOT EXISTS tally.schema_migrations_local ON CLUSTER c " + columns +
				" ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/tally/schema_migrations', '{replica}') ORDER BY version",
			"CREATE TABLE IF NOT EXISTS tally.schema_migrations ON CLUSTER c AS tally.schema_migrations_local\n" +
				"ENGINE = Distributed(c, tally, schema_migrations_local, version)",
		},
	} {
		got, err := schemas.Render(schemaMigrationsTable, target)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%+v: %q, %v; want %q", target, got, err, want)
		}
	}
}

func TestRemote(t *testing.T) {
	for _, tc := range []struct{ user, password, want string }{
		{"default", "", "remote('h:9000', system, processes)"},
		{"", "", "remote('h:9000', system, processes)"},
		{"tally", "", "remote('h:9000', system, processes, 'tally', '')"},
		{"default", `p'w\`, `remote('h:9000', system, processes, 'default', 'p\'w\\')`},
	} {
		if got := remote("h:9000", "system", "processes", tc.user, tc.password); got != tc.want {
			t.Errorf("remote(%q, %q) = %s, want %s", tc.user, tc.password, got, tc.want)
		}
	}
}

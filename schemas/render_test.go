package schemas_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tally-oss/tally/schemas"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/ddl from the renderer")

// TestRenderGolden: the DDL every migration renders, on one server and on
// a cluster, is the text of testdata/ddl/{single,cluster}/<migration>.sql
// (statements separated by a line ";"). go test ./schemas/ -run
// TestRenderGolden -update rewrites them; review the diff.
func TestRenderGolden(t *testing.T) {
	migrations, err := schemas.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for mode, target := range map[string]schemas.Target{
		"single":  {Database: "tally"},
		"cluster": {Database: "tally", Cluster: "tally"},
	} {
		dir := filepath.Join("testdata", "ddl", mode)
		files, _ := filepath.Glob(filepath.Join(dir, "*.sql"))
		if !*update && len(files) != len(migrations) {
			t.Errorf("%s: %d golden files for %d migrations", dir, len(files), len(migrations))
		}
		for _, m := range migrations {
			stmts, err := m.Render(target)
			if err != nil {
				t.Errorf("%s: %v", mode, err)
				continue
			}
			got := strings.Join(stmts, "\n;\n\n") + "\n;\n"
			path := filepath.Join(dir, fmt.Sprintf("%04d_%s.sql", m.Version, m.Name))
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%v (go test ./schemas/ -run TestRenderGolden -update writes it)", err)
				continue
			}
			if got != string(want) {
				t.Errorf("%s renders differently from %s (go test -update rewrites it):\n%s", m.Name, path, got)
			}
			if mode == "single" && (len(stmts) != 1 || stmts[0] != schemas.QualifyTables(m.SQL, "tally")) {
				t.Errorf("%s: one server must run the statement as written, its tables qualified", m.Name)
			}
		}
	}
}

// TestRenderCluster holds the shape of every migration on a cluster: a
// table is a Replicated local table and a Distributed one over it, a
// view reads and feeds local tables, a copy writes and reads through the
// Distributed tables; and a view's source and target are sharded by the
// same key, so that a row the view writes and the same row copied by a
// later migration (or a source row and its derived rows) are on one shard,
// where FINAL folds them.
func TestRenderCluster(t *testing.T) {
	migrations, err := schemas.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	target := schemas.Target{Database: "db", Cluster: "c"}
	shardBy := map[string]string{}
	columns := map[string]string{}
	for _, m := range migrations {
		stmts, err := m.Render(target)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("%04d_%s", m.Version, m.Name)
		if table := regexp.MustCompile(`CREATE TABLE IF NOT EXISTS ([a-z_]+) \(`).FindStringSubmatch(m.SQL); table != nil {
			shardBy[table[1]] = m.ShardBy
			columns[table[1]] = m.SQL
			if len(stmts) != 2 ||
				!regexp.MustCompile(`(?s)CREATE TABLE IF NOT EXISTS db\.`+table[1]+`_local ON CLUSTER c \(.*\) ENGINE = Replicated[A-Za-z]*MergeTree\('/clickhouse/tables/\{shard\}/db/`+table[1]+`', '\{replica\}'`).MatchString(stmts[0]) ||
				stmts[1] != "CREATE TABLE IF NOT EXISTS db."+table[1]+" ON CLUSTER c AS db."+table[1]+"_local\nENGINE = Distributed(c, db, "+table[1]+"_local, "+m.ShardBy+")" {
				t.Errorf("%s: on a cluster:\n%s", name, strings.Join(stmts, "\n;\n"))
			}
			// The key names columns of the table.
			for _, col := range regexp.MustCompile(`[a-z_]+\b[^(]`).FindAllString(strings.TrimPrefix(m.ShardBy, "cityHash64"), -1) {
				col = strings.TrimRight(col, ",) ")
				if !regexp.MustCompile(`(?m)^\s+` + col + `\s`).MatchString(m.SQL) {
					t.Errorf("%s: shard-by %s names %s, not a column of the table", name, m.ShardBy, col)
				}
			}
			continue
		}
		if len(stmts) != 1 {
			t.Errorf("%s: %d statements on a cluster, want 1", name, len(stmts))
			continue
		}
		if v := regexp.MustCompile(`CREATE MATERIALIZED VIEW IF NOT EXISTS ([a-z_]+) TO ([a-z_]+)\n[\s\S]*\nFROM ([a-z_]+)$`).FindStringSubmatch(m.SQL); v != nil {
			want := "CREATE MATERIALIZED VIEW IF NOT EXISTS db." + v[1] + " ON CLUSTER c TO db." + v[2] + "_local"
			if !strings.Contains(stmts[0], want+"\n") || !strings.HasSuffix(stmts[0], "\nFROM db."+v[3]+"_local") {
				t.Errorf("%s: on a cluster:\n%s\nwant %q ... FROM db.%s_local", name, stmts[0], want, v[3])
			}
			if shardBy[v[2]] == "" || shardBy[v[2]] != shardBy[v[3]] {
				t.Errorf("%s: the view's target %s is sharded by %q, its source %s by %q: a row and its copy would be on different shards",
					name, v[2], shardBy[v[2]], v[3], shardBy[v[3]])
			}
			continue
		}
		if m.CopyFrom == "" || stmts[0] != schemas.QualifyTables(m.SQL, "db") {
			t.Errorf("%s: neither a table, a view nor a copy through the Distributed tables:\n%s", name, stmts[0])
		}
	}
}

func TestRenderRefuses(t *testing.T) {
	table := "-- tally:shard-by cityHash64(a)\nCREATE TABLE IF NOT EXISTS t (a String) ENGINE = ReplacingMergeTree ORDER BY a"
	for _, tc := range []struct {
		name, sql string
		target    schemas.Target
		want      string
	}{
		{"bad database", table, schemas.Target{Database: "a.b", Cluster: "c"}, "database name"},
		{"bad cluster", table, schemas.Target{Database: "db", Cluster: "c'); DROP"}, "cluster name"},
		{"no sharding key", "CREATE TABLE IF NOT EXISTS t (a String) ENGINE = MergeTree ORDER BY a",
			schemas.Target{Database: "db", Cluster: "c"}, "shard-by"},
		{"not a MergeTree", "-- tally:shard-by rand()\nCREATE TABLE IF NOT EXISTS t (a String) ENGINE = Null",
			schemas.Target{Database: "db", Cluster: "c"}, "engine"},
		{"not Tally's DDL", "ALTER TABLE t ADD COLUMN b String", schemas.Target{Database: "db", Cluster: "c"}, "cannot render"},
	} {
		if _, err := schemas.Render(tc.sql, tc.target); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %s", tc.name, err, tc.want)
		}
	}
	// On one server a table without a key is what it always was.
	if got, err := schemas.Render("CREATE TABLE IF NOT EXISTS t (a String) ENGINE = Null", schemas.Target{Database: "db"}); err != nil ||
		len(got) != 1 || got[0] != "CREATE TABLE IF NOT EXISTS db.t (a String) ENGINE = Null" {
		t.Errorf("one server: %q, %v", got, err)
	}
}

// TestRenderEngineArguments: a Replicated engine takes the ZooKeeper path
// and replica name before the engine's own arguments.
func TestRenderEngineArguments(t *testing.T) {
	for engine, want := range map[string]string{
		"MergeTree":                   "ReplicatedMergeTree('/clickhouse/tables/{shard}/db/t', '{replica}')",
		"ReplacingMergeTree":          "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/t', '{replica}')",
		"ReplacingMergeTree(version)": "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/t', '{replica}', version)",
		"SummingMergeTree((a, b))":    "", // nested parentheses: refused, not mangled
	} {
		sql := "-- tally:shard-by cityHash64(a)\nCREATE TABLE IF NOT EXISTS t (a String) ENGINE = " + engine + "\nORDER BY a"
		got, err := schemas.Render(sql, schemas.Target{Database: "db", Cluster: "c"})
		if want == "" {
			if err == nil {
				t.Errorf("%s: rendered %q, want an error", engine, got)
			}
			continue
		}
		if err != nil || !strings.Contains(got[0], ") ENGINE = "+want+"\nORDER BY a") {
			t.Errorf("%s: %q, %v; want the engine %s", engine, got, err, want)
		}
	}
}

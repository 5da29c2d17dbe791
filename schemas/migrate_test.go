package schemas_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tally-oss/tally/schemas"
)

func TestMigrations(t *testing.T) {
	migrations, err := schemas.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("clickhouse/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(migrations) == 0 || len(migrations) != len(files) {
		t.Fatalf("%d migrations from %d files in clickhouse/: every file there must be a migration", len(migrations), len(files))
	}
	prev := 0
	for i, m := range migrations {
		name := fmt.Sprintf("%04d_%s.sql", m.Version, m.Name)
		if m.Version <= prev {
			t.Errorf("%s: version %d does not follow %d: versions must strictly increase", name, m.Version, prev)
		}
		if i == 0 && m.Version != 1 {
			t.Errorf("the first migration is version %d, want 1", m.Version)
		}
		prev = m.Version
		if _, err := os.Stat(filepath.Join("clickhouse", name)); err != nil {
			t.Errorf("migration %d (%s) has no file: %v", m.Version, name, err)
		}
		if m.SQL != strings.TrimSpace(m.SQL) || m.SQL == "" {
			t.Errorf("%s: SQL is empty or not trimmed", name)
		}
		code := sqlCode(m.SQL)
		body := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(code), ";"))
		if body == "" {
			t.Errorf("%s: only comments", name)
			continue
		}
		if strings.Contains(body, ";") {
			t.Errorf("%s: more than one statement (ClickHouse 18.16 runs one per query):\n%s", name, code)
		}
		// Migrations may run twice (two services at once, or a retry
		// after a crash), so each must be idempotent: a CREATE ... IF NOT
		// EXISTS, or an INSERT ... SELECT into a ReplacingMergeTree, which
		// folds the rows a second run writes again (the table's migration
		// says so).
		insert := regexp.MustCompile(`(?i)^INSERT\s+INTO\s+[a-z_][a-z0-9_]*\s*\([^)]*\)\s*SELECT\s`).MatchString(body)
		// A copy fills a view's target with the rows stored before the
		// view: the runner must know its source, to wait for the INSERTs
		// open before the view (schemas.Migration.CopyFrom).
		if insert && m.CopyFrom == "" {
			t.Errorf("%s: an INSERT ... SELECT without a \"-- tally:copy-from <table>\" directive", name)
		}
		if !insert && m.CopyFrom != "" {
			t.Errorf("%s: a copy-from directive on a migration that copies nothing", name)
		}
		if !insert && !regexp.MustCompile(`(?i)^CREATE\s+(TABLE|DATABASE|MATERIALIZED\s+VIEW|VIEW)\s+IF\s+NOT\s+EXISTS\s`).MatchString(body) {
			t.Errorf("%s: does not start with CREATE ... IF NOT EXISTS or INSERT INTO t (columns) SELECT:\n%s", name, body)
		}
		// Migrate qualifies table names with the database; a name already
		// qualified, or a second CREATE, would escape that.
		if n, want := len(regexp.MustCompile(`(?i)\bCREATE\b`).FindAllString(body, -1)), map[bool]int{false: 1, true: 0}[insert]; n != want {
			t.Errorf("%s: %d CREATE keywords, want %d", name, n, want)
		}
		if regexp.MustCompile(`(?i)\b(FROM|INTO|TO)\s+[a-z_][a-z0-9_]*\.`).MatchString(body) {
			t.Errorf("%s: a table name is qualified with a database; Migrate does that", name)
		}
		if regexp.MustCompile(`(?i)CREATE TABLE IF NOT EXISTS [a-z_][a-z0-9_]*\.`).MatchString(body) {
			t.Errorf("%s: table name is qualified with a database; Migrate does that", name)
		}
	}
}

// sqlCode returns sql without comments and with string literals emptied,
// so that a ';' inside either is not taken for a statement separator.
func sqlCode(sql string) string {
	var b strings.Builder
	for i := 0; i < len(sql); i++ {
		switch {
		case strings.HasPrefix(sql[i:], "--"):
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				return b.String()
			}
			i += end
			b.WriteByte('\n')
		case strings.HasPrefix(sql[i:], "/*"):
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return b.String()
			}
			i += end + 3
			b.WriteByte(' ')
		case sql[i] == '\'':
			b.WriteString("''")
			for i++; i < len(sql) && sql[i] != '\''; i++ {
				if sql[i] == '\\' {
					i++
				}
			}
		default:
			b.WriteByte(sql[i])
		}
	}
	return b.String()
}

func TestSQLCode(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT 1; -- x; y\nSELECT 2": "SELECT 1; \nSELECT 2",
		"SELECT ';' /* ; */ x":        "SELECT ''   x",
		`SELECT 'a\';b' c`:            "SELECT '' c",
		"CREATE TABLE t (a String)":   "CREATE TABLE t (a String)",
		"-- only a comment":           "",
	} {
		if got := sqlCode(in); got != want {
			t.Errorf("sqlCode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDatabasePattern(t *testing.T) {
	for name, ok := range map[string]bool{
		"tally": true, "tally_test_1": true, "_x": true, "T": true,
		"": false, "1db": false, "a-b": false, "a.b": false, "a b": false, "a;DROP": false,
		"`a`": false, strings.Repeat("d", 63): true, strings.Repeat("d", 64): false,
	} {
		if schemas.DatabasePattern.MatchString(name) != ok {
			t.Errorf("DatabasePattern.MatchString(%q) = %v", name, !ok)
		}
	}
}

package schemas

import (
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The ClickHouse DDL as text, one statement per file (ClickHouse 18.16 runs one
// statement per query), applied in file-name order. Every statement is
// idempotent (IF NOT EXISTS) so that two services migrating at once, or a
// migration interrupted half-way, are harmless.
//
//go:embed clickhouse/*.sql
var migrationFiles embed.FS

// Migration is one DDL statement.
type Migration struct {
	Version int
	Name    string
	SQL     string

	// CopyFrom is the table a copy migration reads (its directive
	// "-- tally:copy-from <table>"): an INSERT ... SELECT ... FROM <table>
	// that fills the target of a materialized view on <table> with the
	// rows stored before the view existed. ClickHouse binds an INSERT to
	// the views that exist when it is prepared, so an INSERT into <table>
	// that was already open when the view was created reaches <table>
	// only; the runner (chclient.Migrate) waits until every such INSERT
	// has ended before it copies, and copies one monthly partition of
	// <table> (toYYYYMM(time)) per statement, so that no statement runs
	// for the whole table and a re-run after a failure is harmless (the
	// target is a ReplacingMergeTree read with FINAL).
	CopyFrom string
	// Repeats is the version of the copy this one runs again (its
	// directive "-- tally:repeats NNNN"), for stores whose first copy ran
	// before the runner waited for open INSERTs: the runner records it
	// without running it when it applied that version itself, in the
	// same run.
	Repeats int
	// ShardBy is the sharding key of the table a CREATE TABLE migration
	// creates (its directive "-- tally:shard-by <expr>"), which every such
	// migration carries: in cluster mode (Render) the table's rows go to
	// the shard this expression of the row picks. An identity's rows stay
	// on one shard (a hash of organization and customer), so that the
	// first-version lookup and a customer's usage read one shard, and
	// FINAL folds a row and its duplicates, which are on the same shard.
	ShardBy string
}

var (
	copyFromDirective = regexp.MustCompile(`(?m)^-- tally:copy-from ([a-z_][a-z0-9_]*)\s*$`)
	repeatsDirective  = regexp.MustCompile(`(?m)^-- tally:repeats (\d{4})\s*$`)
)

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Migrations returns the embedded migrations in order.
func Migrations() ([]Migration, error) {
	return migrationsFrom(migrationFiles)
}

// migrationsFrom reads and checks the migrations in fsys's clickhouse/.
func migrationsFrom(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, "clickhouse")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %s: name must be NNNN_name.sql", e.Name())
		}
		body, err := fs.ReadFile(fsys, "clickhouse/"+e.Name())
		if err != nil {
			return nil, err
		}
		version, _ := strconv.Atoi(m[1])
		mig := Migration{Version: version, Name: m[2], SQL: strings.TrimSpace(string(body))}
		if d := copyFromDirective.FindStringSubmatch(mig.SQL); d != nil {
			mig.CopyFrom = d[1]
			// The runner appends a WHERE clause per partition.
			if !strings.HasSuffix(mig.SQL, "\nFROM "+mig.CopyFrom) {
				return nil, fmt.Errorf("migration file %s: a copy from %s must end with a line \"FROM %s\"", e.Name(), mig.CopyFrom, mig.CopyFrom)
			}
		}
		if d := shardByDirective.FindStringSubmatch(mig.SQL); d != nil {
			mig.ShardBy = d[1]
		}
		if table := createTable.MatchString(mig.SQL); table != (mig.ShardBy != "") {
			if table {
				return nil, fmt.Errorf("migration file %s: a CREATE TABLE needs a \"-- tally:shard-by <expr>\" directive (its sharding key on a cluster)", e.Name())
			}
			return nil, fmt.Errorf("migration file %s: a tally:shard-by directive on a migration that creates no table", e.Name())
		}
		if d := repeatsDirective.FindStringSubmatch(mig.SQL); d != nil {
			mig.Repeats, _ = strconv.Atoi(d[1])
			if mig.CopyFrom == "" || mig.Repeats >= version {
				return nil, fmt.Errorf("migration file %s: tally:repeats names an earlier copy, in a copy", e.Name())
			}
		}
		out = append(out, mig)
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out, nil
}

// DatabasePattern restricts database names, which are identifiers in DDL
// and cannot be bound as parameters.
var DatabasePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

var (
	createTable = regexp.MustCompile(`(?i)CREATE TABLE IF NOT EXISTS ([a-z_][a-z0-9_]*)`)
	createView  = regexp.MustCompile(`(?i)CREATE MATERIALIZED VIEW IF NOT EXISTS ([a-z_][a-z0-9_]*) TO ([a-z_][a-z0-9_]*)`)
	insertInto  = regexp.MustCompile(`(?i)INSERT INTO ([a-z_][a-z0-9_]*)`)
	// Upper case only, and the name not already qualified: "from" in a
	// comment stays as it is.
	selectFrom = regexp.MustCompile(`\bFROM ([a-z_][a-z0-9_]*)(\s|$)`)
)

// QualifyTables prefixes the tables a migration names with the database,
// so that it runs against a connection not bound to it: the table of a
// CREATE TABLE, the view and target of a CREATE MATERIALIZED VIEW ... TO,
// the table of an INSERT INTO and every table after FROM (written in upper
// case).
func QualifyTables(sql, database string) string {
	sql = createTable.ReplaceAllString(sql, "CREATE TABLE IF NOT EXISTS "+database+".$1")
	sql = createView.ReplaceAllString(sql, "CREATE MATERIALIZED VIEW IF NOT EXISTS "+database+".$1 TO "+database+".$2")
	sql = insertInto.ReplaceAllString(sql, "INSERT INTO "+database+".$1")
	return selectFrom.ReplaceAllString(sql, "FROM "+database+".$1$2")
}

package chclient

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/schemas"
)

// MigrateOptions tune Migrate; the zero value is the default.
type MigrateOptions struct {
	// InsertWait bounds the wait before a copy migration for the INSERTs
	// into its source that were open when it started (default
	// DefaultInsertWait).
	InsertWait time.Duration
	// Logger is told about those waits (default: none).
	Logger *slog.Logger
	// OnWait, if set, is called at every check that finds such INSERTs
	// still running, with their number (for tests).
	OnWait func(m schemas.Migration, running int)
	// Cluster runs the migrations on this cluster of servers
	// (Config.Cluster; schemas.Render says what a cluster's tables
	// are). Default: the cluster of conn when Config opened it (OpenServer),
	// else one server.
	Cluster string
	// Reapply runs the DDL of recorded migrations again (every statement
	// is IF NOT EXISTS; copies are not run again), in migration order:
	// on a cluster, the statements ON CLUSTER reach every server of
	// remote_servers now, so a replica added since gets its tables and
	// their views before the next step (SCALING.md, adding a replica).
	// On one server it changes nothing.
	Reapply bool
}

// DefaultInsertWait is how long a copy migration waits for the INSERTs
// into its source table that were open when it started. The aggregator's
// and the backfiller's INSERTs last seconds; one still open after this
// is stuck, and the migration fails rather than copy without it.
const DefaultInsertWait = 10 * time.Minute

// insertPoll is the interval between two checks of system.processes.
const insertPoll = 100 * time.Millisecond

// Migrate creates the database if needed and applies the migrations not yet
// recorded in its schema_migrations table. conn must not be bound to the
// database (it may not exist yet); statements are qualified with it.
func Migrate(ctx context.Context, conn driver.Conn, database string) (applied []schemas.Migration, err error) {
	return MigrateWith(ctx, conn, database, MigrateOptions{})
}

// MigrateWith is Migrate with options.
//
// A copy migration (schemas.Migration.CopyFrom: the rows of a source
// table copied into the target of a materialized view created by an
// earlier migration) first waits until every INSERT into the source that
// was running when it started has ended (waitForOpenInserts), then copies
// one monthly partition of the source per statement. A copy that repeats
// an earlier one (schemas.Migration.Repeats) is only recorded when this
// run applied the earlier one.
//
// On a cluster (MigrateOptions.Cluster, or the Config that opened conn)
// every statement is rendered for it (schemas.Render) and runs ON
// CLUSTER, once for all servers, from whichever process migrates; the
// versions are recorded in a replicated, Distributed schema_migrations
// that every server reads; a copy waits for the INSERTs open on every
// server and reads every server's shard (copyMigrationOnCluster).
func MigrateWith(ctx context.Context, conn driver.Conn, database string, opts MigrateOptions) (applied []schemas.Migration, err error) {
	if !schemas.DatabasePattern.MatchString(database) {
		return nil, fmt.Errorf("database name %q must match %s", database, schemas.DatabasePattern)
	}
	if opts.InsertWait <= 0 {
		opts.InsertWait = DefaultInsertWait
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	target := schemas.Target{Database: database, Cluster: opts.Cluster}
	if c, ok := conn.(*Conn); ok && target.Cluster == "" {
		target.Cluster = c.cfg.Cluster
	}
	if target.Cluster != "" {
		if !schemas.ClusterPattern.MatchString(target.Cluster) {
			return nil, fmt.Errorf("cluster name %q must match %s", target.Cluster, schemas.ClusterPattern)
		}
		// Whatever conn was opened with: the records and copies go through
		// Distributed tables (clusterSettings).
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings((&Config{Cluster: target.Cluster}).clusterSettings()))
	}
	createDatabase := "CREATE DATABASE IF NOT EXISTS " + database
	if target.Cluster != "" {
		createDatabase += " ON CLUSTER " + target.Cluster
	}
	if err := execDDL(ctx, conn, target, createDatabase); err != nil {
		return nil, fmt.Errorf("create database %s: %w", database, err)
	}
	if err := execRendered(ctx, conn, target, schemaMigrationsTable); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	done := map[int]bool{}
	rows, err := conn.Query(ctx, "SELECT DISTINCT version FROM "+database+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		done[int(v)] = true
	}
	rows.Close()
	all, err := schemas.Migrations()
	if err != nil {
		return nil, err
	}
	appliedHere := map[int]bool{}
	for _, m := range all {
		if done[m.Version] {
			if opts.Reapply && m.CopyFrom == "" {
				if err := execRendered(ctx, conn, target, m.SQL); err != nil {
					return applied, fmt.Errorf("reapply migration %04d_%s: %w", m.Version, m.Name, err)
				}
			}
			continue
		}
		var err error
		switch {
		case m.Repeats != 0 && appliedHere[m.Repeats]:
			// This run's copy already waited for the open INSERTs.
		case m.CopyFrom != "" && target.Cluster != "":
			err = copyMigrationOnCluster(ctx, conn, target, m, opts)
		case m.CopyFrom != "":
			err = copyMigration(ctx, conn, database, m, opts)
		default:
			err = execRendered(ctx, conn, target, m.SQL)
		}
		if err != nil {
			return applied, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
		}
		if err := recordMigration(ctx, conn, database, m); err != nil {
			return applied, fmt.Errorf("record migration %04d: %w", m.Version, err)
		}
		appliedHere[m.Version] = true
		applied = append(applied, m)
	}
	return applied, nil
}

// copyMigration waits for the INSERTs into m's source that are open now,
// then runs m once per monthly partition of the source (every table a
// copy reads is partitioned by toYYYYMM(time)). The partitions are read
// after the wait: an INSERT that starts later is fed by the view, so a
// month it creates needs no copy. Each statement reads one month, so none
// runs for the whole table (a copy of 100 million readings in one
// statement could outlast the driver's read timeout), and one that failed
// is run again with the migration: the target folds identical rows.
func copyMigration(ctx context.Context, conn driver.Conn, database string, m schemas.Migration, opts MigrateOptions) error {
	if err := waitForOpenInserts(ctx, conn, database, m, opts); err != nil {
		return err
	}
	rows, err := conn.Query(ctx, "SELECT DISTINCT partition_id FROM system.parts WHERE database = ? AND table = ? AND active ORDER BY partition_id",
		database, m.CopyFrom)
	if err != nil {
		return fmt.Errorf("list the partitions of %s: %w", m.CopyFrom, err)
	}
	var months []int
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("list the partitions of %s: %w", m.CopyFrom, err)
		}
		month, err := strconv.Atoi(id)
		if err != nil {
			rows.Close()
			return fmt.Errorf("partition %q of %s is not a toYYYYMM(time) month", id, m.CopyFrom)
		}
		months = append(months, month)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list the partitions of %s: %w", m.CopyFrom, err)
	}
	sql := schemas.QualifyTables(m.SQL, database)
	for _, month := range months {
		if err := conn.Exec(ctx, fmt.Sprintf("%s\nWHERE toYYYYMM(time) = %d", sql, month)); err != nil {
			return fmt.Errorf("copy month %d: %w", month, err)
		}
	}
	return nil
}

// waitForOpenInserts waits until every INSERT into m's source table (in
// database, or not qualified: system.processes of ClickHouse 18.16 does
// not say which database a query runs in) that is running now has ended,
// or fails after opts.InsertWait. ClickHouse binds an INSERT to the
// materialized views of its table when the INSERT is prepared, before its
// data arrives; an INSERT prepared before the copy's view was created
// writes its rows to the source only, however late they arrive, and it is
// running now unless it has ended. One that has ended is in the parts the
// copy reads; one that starts from now on is fed by the view. Waited for:
// every INSERT whose elapsed time covers the time since the wait began,
// with two seconds of margin (now() has whole seconds), so one that
// started just before is waited for, and one that started just after may
// be.
//
// Only this server's processes are seen: one server's migrations. A
// cluster's are waited for on every server (waitForOpenInsertsOnCluster).
func waitForOpenInserts(ctx context.Context, conn driver.Conn, database string, m schemas.Migration, opts MigrateOptions) error {
	var start uint32
	if err := conn.QueryRow(ctx, "SELECT toUInt32(now())").Scan(&start); err != nil {
		return fmt.Errorf("wait for the INSERTs into %s: %w", m.CopyFrom, err)
	}
	pattern := insertPattern(database, m.CopyFrom)
	return pollOpenInserts(ctx, m, opts, "query_id", func() (uint64, []string, error) {
		var running uint64
		var ids []string
		if err := conn.QueryRow(ctx, `SELECT count(), groupArray(query_id) FROM system.processes
			WHERE is_initial_query AND elapsed >= toFloat64(toUInt32(now())) - ? AND match(query, ?)`,
			float64(start)+2, pattern).Scan(&running, &ids); err != nil {
			return 0, nil, fmt.Errorf("wait for the INSERTs into %s: %w", m.CopyFrom, err)
		}
		return running, ids, nil
	})
}

// pollOpenInserts is the loop of waitForOpenInserts and
// waitForOpenInsertsOnCluster: it calls count (the INSERTs into m's
// source still running, and their ids, named by idLabel in the error)
// every insertPoll until it finds none, logs when it began and ended
// waiting, and fails once opts.InsertWait has passed or ctx is done.
func pollOpenInserts(ctx context.Context, m schemas.Migration, opts MigrateOptions, idLabel string, count func() (uint64, []string, error)) error {
	deadline := time.Now().Add(opts.InsertWait)
	logged := false
	for {
		running, ids, err := count()
		if err != nil {
			return err
		}
		if running == 0 {
			if logged {
				opts.Logger.Info("INSERTs open before the copy have ended", "migration", m.Version, "table", m.CopyFrom)
			}
			return nil
		}
		if opts.OnWait != nil {
			opts.OnWait(m, int(running))
		}
		if !logged {
			opts.Logger.Info("waiting for the INSERTs open before the copy", "migration", m.Version, "table", m.CopyFrom,
				"running", running, "query_ids", ids)
			logged = true
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d INSERTs into %s open before the copy still run after %v (%s %v): "+
				"copying without them would leave their rows out of the copy for good; end them, or stop their writers, and migrate again",
				running, m.CopyFrom, opts.InsertWait, idLabel, ids)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the INSERTs into %s: %w", m.CopyFrom, ctx.Err())
		case <-time.After(insertPoll):
		}
	}
}

// insertPattern matches the text of an INSERT into one of tables, after
// any comments, qualified with database or not, quoted or not, and no
// other table: readings but not readings_by_day (an RE2 expression, as
// ClickHouse's match() and Go's regexp read it).
func insertPattern(database string, tables ...string) string {
	name := func(s string) string { return "`?" + regexp.QuoteMeta(s) + "`?" }
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = name(t)
	}
	return `(?is)^(\s|--[^\n]*(\n|$)|/\*.*?\*/)*INSERT\s+INTO\s+(` + name(database) + `\s*\.\s*)?(` + strings.Join(names, "|") + `)(\s|\(|$)`
}

// schemaMigrationsTable records the versions applied, rendered like a
// migration: on a cluster it is replicated and Distributed, so a version
// is recorded once for the whole cluster and read from any server.
const schemaMigrationsTable = "-- tally:shard-by version\n" +
	"CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, applied_at DateTime('UTC')) " +
	"ENGINE = ReplacingMergeTree ORDER BY version"

// execRendered runs the statements of sql rendered for target.
func execRendered(ctx context.Context, conn driver.Conn, target schemas.Target, sql string) error {
	stmts, err := schemas.Render(sql, target)
	if err != nil {
		return err
	}
	for _, stmt := range stmts {
		if err := execDDL(ctx, conn, target, stmt); err != nil {
			return err
		}
	}
	return nil
}

// recordMigration inserts through a batch: on ClickHouse 18.16 an INSERT
// ... VALUES sent with Exec never returns (the server waits for a data
// block the driver does not send).
func recordMigration(ctx context.Context, conn driver.Conn, database string, m schemas.Migration) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+database+".schema_migrations (version, name, applied_at)")
	if err != nil {
		return err
	}
	if err := batch.Append(uint32(m.Version), m.Name, time.Now().UTC()); err != nil {
		_ = batch.Abort()
		return err
	}
	return batch.Send()
}

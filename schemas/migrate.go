package schemas

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The ClickHouse DDL, one statement per file (ClickHouse 18.16 runs one
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
}

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Migrations returns the embedded migrations in order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "clickhouse")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %s: name must be NNNN_name.sql", e.Name())
		}
		body, err := migrationFiles.ReadFile("clickhouse/" + e.Name())
		if err != nil {
			return nil, err
		}
		version, _ := strconv.Atoi(m[1])
		out = append(out, Migration{Version: version, Name: m[2], SQL: strings.TrimSpace(string(body))})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out, nil
}

// DatabasePattern restricts database names, which are identifiers in DDL
// and cannot be bound as parameters.
var DatabasePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Migrate creates the database if needed and applies the migrations not yet
// recorded in its schema_migrations table. conn must not be bound to the
// database (it may not exist yet); statements are qualified with it.
func Migrate(ctx context.Context, conn driver.Conn, database string) (applied []Migration, err error) {
	if !DatabasePattern.MatchString(database) {
		return nil, fmt.Errorf("database name %q must match %s", database, DatabasePattern)
	}
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+database); err != nil {
		return nil, fmt.Errorf("create database %s: %w", database, err)
	}
	if err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+database+
		".schema_migrations (version UInt32, name String, applied_at DateTime('UTC')) "+
		"ENGINE = ReplacingMergeTree ORDER BY version"); err != nil {
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
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	for _, m := range all {
		if done[m.Version] {
			continue
		}
		if err := conn.Exec(ctx, qualifyTables(m.SQL, database)); err != nil {
			return applied, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
		}
		if err := recordMigration(ctx, conn, database, m); err != nil {
			return applied, fmt.Errorf("record migration %04d: %w", m.Version, err)
		}
		applied = append(applied, m)
	}
	return applied, nil
}

var createTable = regexp.MustCompile(`(?i)CREATE TABLE IF NOT EXISTS ([a-z_][a-z0-9_]*)`)

// qualifyTables prefixes the table of a CREATE TABLE with the database.
func qualifyTables(sql, database string) string {
	return createTable.ReplaceAllString(sql, "CREATE TABLE IF NOT EXISTS "+database+".$1")
}

// recordMigration inserts through a batch: on ClickHouse 18.16 an INSERT
// ... VALUES sent with Exec never returns (the server waits for a data
// block the driver does not send).
func recordMigration(ctx context.Context, conn driver.Conn, database string, m Migration) error {
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

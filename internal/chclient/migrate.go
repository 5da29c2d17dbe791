package chclient

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/schemas"
)

// Migrate creates the database if needed and applies the migrations not yet
// recorded in its schema_migrations table. conn must not be bound to the
// database (it may not exist yet); statements are qualified with it.
func Migrate(ctx context.Context, conn driver.Conn, database string) (applied []schemas.Migration, err error) {
	if !schemas.DatabasePattern.MatchString(database) {
		return nil, fmt.Errorf("database name %q must match %s", database, schemas.DatabasePattern)
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
	all, err := schemas.Migrations()
	if err != nil {
		return nil, err
	}
	for _, m := range all {
		if done[m.Version] {
			continue
		}
		if err := conn.Exec(ctx, schemas.QualifyTables(m.SQL, database)); err != nil {
			return applied, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
		}
		if err := recordMigration(ctx, conn, database, m); err != nil {
			return applied, fmt.Errorf("record migration %04d: %w", m.Version, err)
		}
		applied = append(applied, m)
	}
	return applied, nil
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

package chclient

import (
	"context"
	"database/sql"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Conn is a pool of connections to one database, as Open and OpenLazy
// return it, that can also open sessions.
type Conn struct {
	driver.Conn
	cfg      Config
	database string
}

// OpenSession returns a database/sql handle of at most one connection to
// the pool's database, opened on first use. A caller that holds its
// connection (DB.Conn) runs every statement on one server, so a read sees
// the writes made before it, even behind a load balancer or with a pool
// over several replicas; ClickHouse Cloud recommends exactly this (a
// "sticky" native connection) for read-your-writes.
//
// Sessions send the consistency settings with every statement:
// insert_quorum when Config.InsertQuorum is set, so that an insert returns
// only once that many replicas have it, and select_sequential_consistency=1
// with it or with Config.SequentialConsistency, so that a read on any
// replica sees every insert that returned, which is what a reconnection
// (to whichever replica the balancer picks) or another process needs.
// ClickHouse 18.16 accepts both against plain MergeTree tables and ignores
// them there (tested).
//
// Why database/sql: its Conn is the one way clickhouse-go offers to run
// statements on one connection of the caller's choosing. The native pool,
// even with MaxOpenConns 1, can dial a second connection: a query hands
// its connection back from a goroutine after Rows.Close has returned, and
// a statement that comes in between finds the pool empty and dials.
func (c *Conn) OpenSession() *sql.DB {
	opts := c.cfg.options(c.database)
	opts.MaxOpenConns, opts.MaxIdleConns = 1, 1
	for k, v := range c.cfg.sessionSettings() {
		opts.Settings[k] = v
	}
	db := clickhouse.OpenDB(opts)
	// A held connection is never recycled by age: a new connection may
	// reach another replica.
	db.SetConnMaxLifetime(0)
	return db
}

// sessionSettings are the settings a session sends with every statement.
func (c *Config) sessionSettings() clickhouse.Settings {
	s := clickhouse.Settings{}
	if c.InsertQuorum > 0 {
		s["insert_quorum"] = c.InsertQuorum
	}
	if c.InsertQuorum > 0 || c.SequentialConsistency {
		s["select_sequential_consistency"] = 1
	}
	return s
}

// WithSessionSettings returns ctx carrying the settings sessions send, for
// a statement on the pool that needs them too: a read that must see the
// inserts of every session (the aggregator's backfill), an insert that must
// reach the quorum. It returns ctx itself when none are configured, and
// replaces other settings ctx carries.
func (c *Conn) WithSessionSettings(ctx context.Context) context.Context {
	settings := c.cfg.sessionSettings()
	if len(settings) == 0 {
		return ctx
	}
	return clickhouse.Context(ctx, clickhouse.WithSettings(settings))
}

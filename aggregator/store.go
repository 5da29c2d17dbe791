package aggregator

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"
)

// Store is where the aggregator keeps what it derives from the topic. Every
// write is idempotent: the tables are ReplacingMergeTrees whose sort key is
// the row identity, so a retried insert or a redelivered batch folds into
// the rows already there.
//
// Read-your-writes is part of the contract: StoredVersions must observe
// every InsertEvents of the same partition that returned before it, in
// this process or, after a rebalance, in the previous owner. Exactly once
// rests on it (doc.go); clickhouseStore meets it by pinning each
// partition's calls to one connection and, across connections, with the
// consistency settings (session.go). The partition is the one ctx carries
// (withPartition).
type Store interface {
	// StoredVersions returns, for each key that the events table holds,
	// the Kafka positions of its stored rows, including every row that an
	// InsertEvents of the same partition stored before it was called.
	StoredVersions(ctx context.Context, keys []EventKey) (map[EventKey][]Position, error)
	InsertEvents(ctx context.Context, rows []EventRow) error
	InsertReadings(ctx context.Context, rows []ReadingRow) error
	InsertDeadLetters(ctx context.Context, rows []DeadLetterRow) error
}

// EventKey is the identity of an event: the first accepted version of a key
// is the one that counts.
type EventKey struct {
	OrgID, CustomerID, ID string
}

// Position is where a record sits in the event topic.
type Position struct {
	Partition int32
	Offset    int64
}

// EventRow is a row of the events table.
type EventRow struct {
	EventKey
	Type       string
	Source     string
	Time       time.Time
	Properties string
	IngestedAt time.Time
	Position
}

// ReadingRow is a row of the readings table: what one event contributes to
// one meter revision.
type ReadingRow struct {
	OrgID         string
	MeterKey      string
	MeterRevision uint64
	CustomerID    string
	EventID       string
	Time          time.Time
	Value         decimal.Decimal
	DistinctValue string
	GroupKeys     []string
	GroupValues   []string
	IngestedAt    time.Time
}

// DeadLetterRow is an event (or unreadable record) that one meter cannot
// meter, with the reason.
type DeadLetterRow struct {
	OrgID, CustomerID, EventID, EventType string
	MeterKey                              string // "" when the record itself is unreadable
	Reason, Message                       string
	Payload                               []byte // the record value as read from Kafka
	Key                                   []byte // the record key, reused for the dead-letter topic
	Time, IngestedAt, DeadLetteredAt      time.Time
	Position
	// RecordBytes and RecordWith are set when Payload is nil because
	// another dead letter of the same record, the one of meter RecordWith,
	// carries it (boundBatchDeadLetters); RecordBytes is its size.
	RecordBytes int
	RecordWith  string
}

// clickhouseStore writes through the native protocol. Inserts always list
// their columns: without the list, a batch on ClickHouse 18.16 has no
// columns at all. A call whose ctx carries a partition runs on that
// partition's session (session.go); other calls (backfill) and every call
// of a store without sessions run on the pool, which is correct against
// one server only.
type clickhouseStore struct {
	conn     driver.Conn
	sessions *sessions // nil: everything on conn
	// withSettings adds the sessions' consistency settings to a statement
	// on conn; nil adds none.
	withSettings func(context.Context) context.Context
	metrics      *metrics
	quorum       quorumQueue // inserts into a table one at a time once quorum inserts queue (quorum.go)
}

var _ Store = (*clickhouseStore)(nil)

// The lookup sends the batch's identities as an external table rather than
// as a literal IN list: 10,000 keys of up to 500 bytes would not fit in
// max_query_size (256 KiB), while an external table travels as a data block
// of any size (verified on ClickHouse 18.16).
//
// It reads event_identities, which every insert into events feeds in the
// same INSERT (schemas/clickhouse/0012-0014): not partitioned by month and
// with small granules, it costs a bounded number of rows per key however
// many events are stored, where events itself made each key read a granule
// of every month.
const storedVersionsQuery = `SELECT org_id, customer_id, id, kafka_partition, kafka_offset
FROM event_identities
PREWHERE key_hash IN (SELECT cityHash64(org_id, customer_id, id) FROM batch_keys)
WHERE (org_id, customer_id, id) IN (SELECT org_id, customer_id, id FROM batch_keys)`

func (s *clickhouseStore) StoredVersions(ctx context.Context, keys []EventKey) (map[EventKey][]Position, error) {
	out := make(map[EventKey][]Position)
	if len(keys) == 0 {
		return out, nil
	}
	// A table block is consumed by the query, so each attempt builds its own.
	table, err := ext.NewTable("batch_keys",
		ext.Column("org_id", "String"), ext.Column("customer_id", "String"), ext.Column("id", "String"))
	if err != nil {
		return nil, fmt.Errorf("look up stored events: %w", err)
	}
	for _, k := range keys {
		if err := table.Append(k.OrgID, k.CustomerID, k.ID); err != nil {
			return nil, fmt.Errorf("look up stored events: %w", err)
		}
	}
	// The server reports the rows it read in progress packets, each a
	// delta; their sum is what the lookup cost (the external table's own
	// rows included: one per key). Packets can arrive on the driver's
	// reading goroutine while Scan runs, hence the atomic.
	var rowsRead atomic.Uint64
	start := time.Now()
	err = s.on(ctx, func(ctx context.Context, c storeConn) error {
		rowsRead.Store(0) // a retry on another connection starts over
		rows, err := c.query(clickhouse.Context(ctx, clickhouse.WithExternalTable(table),
			clickhouse.WithProgress(func(p *clickhouse.Progress) { rowsRead.Add(p.Rows) })), storedVersionsQuery)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k EventKey
			var p Position
			if err := rows.Scan(&k.OrgID, &k.CustomerID, &k.ID, &p.Partition, &p.Offset); err != nil {
				return err
			}
			out[k] = append(out[k], p) // unmerged copies of one row are harmless
		}
		return rows.Err()
	})
	s.metrics.lookupDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, fmt.Errorf("look up stored events: %w", err)
	}
	n := float64(rowsRead.Load())
	s.metrics.lookupRowsRead.Observe(n)
	s.metrics.lookupRowsReadPerKey.Observe(n / float64(len(keys)))
	return out, nil
}

func (s *clickhouseStore) InsertEvents(ctx context.Context, rows []EventRow) error {
	return s.insert(ctx, tableEvents, `INSERT INTO events (org_id, customer_id, id, type, source, time, time_ns,
		properties, ingested_at, kafka_partition, kafka_offset)`, len(rows), func(add func(...any) error) error {
		for _, r := range rows {
			if err := add(r.OrgID, r.CustomerID, r.ID, r.Type, r.Source, r.Time.Truncate(time.Second), r.Time.UnixNano(),
				r.Properties, r.IngestedAt.Truncate(time.Second), r.Partition, r.Offset); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *clickhouseStore) InsertReadings(ctx context.Context, rows []ReadingRow) error {
	return s.insert(ctx, tableReadings, `INSERT INTO readings (org_id, meter_key, meter_revision, customer_id, event_id,
		time, time_ns, value, distinct_value, group_keys, group_values, ingested_at)`, len(rows), func(add func(...any) error) error {
		for _, r := range rows {
			if err := add(r.OrgID, r.MeterKey, r.MeterRevision, r.CustomerID, r.EventID,
				r.Time.Truncate(time.Second), r.Time.UnixNano(), r.Value, r.DistinctValue,
				nonNil(r.GroupKeys), nonNil(r.GroupValues), r.IngestedAt.Truncate(time.Second)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *clickhouseStore) InsertDeadLetters(ctx context.Context, rows []DeadLetterRow) error {
	return s.insert(ctx, tableDeadLetters, `INSERT INTO dead_letters (org_id, customer_id, event_id, event_type, meter_key,
		reason, message, payload, time, ingested_at, dead_lettered_at, kafka_partition, kafka_offset)`, len(rows), func(add func(...any) error) error {
		for _, r := range rows {
			if err := add(r.OrgID, r.CustomerID, r.EventID, r.EventType, r.MeterKey, r.Reason, r.Message,
				string(r.Payload), r.Time.Truncate(time.Second), r.IngestedAt.Truncate(time.Second),
				r.DeadLetteredAt.Truncate(time.Second), r.Partition, r.Offset); err != nil {
				return err
			}
		}
		return nil
	})
}

// insert sends one block. A Send that fails after the server received the
// block may still have written it; the caller's retry writes it again and
// the ReplacingMergeTree folds the copies.
func (s *clickhouseStore) insert(ctx context.Context, table, query string, n int, fill func(add func(...any) error) error) error {
	if n == 0 {
		return nil
	}
	release, err := s.quorum.acquire(ctx, table)
	if err != nil {
		return fmt.Errorf("insert %d rows into %s: %w", n, table, err)
	}
	start := time.Now()
	err = s.on(ctx, func(ctx context.Context, c storeConn) error { return c.insert(ctx, query, fill) })
	release()
	s.quorum.observe(err)
	s.metrics.insertDuration.WithLabelValues(table).Observe(time.Since(start).Seconds())
	if err != nil {
		return fmt.Errorf("insert %d rows into %s: %w", n, table, err)
	}
	s.metrics.insertRows.WithLabelValues(table).Observe(float64(n))
	return nil
}

// send sends one block through the pool.
func (s *clickhouseStore) send(ctx context.Context, query string, fill func(driver.Batch) error) error {
	batch, err := s.conn.PrepareBatch(ctx, query)
	if err != nil {
		return err
	}
	if err := fill(batch); err != nil {
		_ = batch.Abort()
		return err
	}
	return batch.Send()
}

// on runs fn on the session of ctx's partition, or on the pool with the
// sessions' settings; fn uses the ctx it is given.
func (s *clickhouseStore) on(ctx context.Context, fn func(context.Context, storeConn) error) error {
	if sess := s.sessions.forContext(ctx); sess != nil {
		return sess.do(ctx, func(c *sql.Conn) error { return fn(ctx, sessionConn{c}) })
	}
	return fn(s.consistent(ctx), poolConn{s, s.conn})
}

// consistent adds the sessions' consistency settings to a statement on
// the pool: a read then sees the inserts of every session, which the
// backfill's scan of the events table needs (see backfill.go).
func (s *clickhouseStore) consistent(ctx context.Context) context.Context {
	if s.withSettings == nil {
		return ctx
	}
	return s.withSettings(ctx)
}

// storeConn is where one Store call runs: a partition's session or the
// pool. Both speak the native protocol; a session through database/sql.
type storeConn interface {
	query(ctx context.Context, query string) (storeRows, error)
	// insert sends one block of the rows that fill adds.
	insert(ctx context.Context, query string, fill func(add func(...any) error) error) error
}

type storeRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

type poolConn struct {
	s    *clickhouseStore
	conn driver.Conn
}

func (c poolConn) query(ctx context.Context, query string) (storeRows, error) {
	return c.conn.Query(ctx, query)
}

func (c poolConn) insert(ctx context.Context, query string, fill func(add func(...any) error) error) error {
	return c.s.send(ctx, query, func(b driver.Batch) error { return fill(b.Append) })
}

// sessionConn runs on a held connection.
type sessionConn struct{ conn *sql.Conn }

func (c sessionConn) query(ctx context.Context, query string) (storeRows, error) {
	return c.conn.QueryContext(ctx, query)
}

// insert is clickhouse-go's database/sql batch: a transaction of one
// prepared INSERT, whose every Exec appends a row to one block, sent on
// Commit. It drives the driver's connection directly (Raw): through
// database/sql's Stmt, each row's Exec also takes locks and converts its
// arguments (measured: 2.2 instead of 1.7 KB allocated per readings row).
func (c sessionConn) insert(ctx context.Context, query string, fill func(add func(...any) error) error) error {
	return c.conn.Raw(func(dc any) error {
		conn, ok := dc.(interface {
			sqldriver.ConnBeginTx
			sqldriver.ConnPrepareContext
		})
		if !ok {
			return fmt.Errorf("clickhouse session: %T cannot begin and prepare", dc)
		}
		tx, err := conn.BeginTx(ctx, sqldriver.TxOptions{})
		if err != nil {
			return err
		}
		stmt, err := conn.PrepareContext(ctx, query)
		if err != nil {
			_ = tx.Rollback()
			return err
		}
		exec, ok := stmt.(sqldriver.StmtExecContext)
		if !ok {
			_ = tx.Rollback()
			return fmt.Errorf("clickhouse session: %T cannot exec", stmt)
		}
		var args []sqldriver.NamedValue
		if err := fill(func(values ...any) error {
			args = args[:0]
			for i, v := range values {
				args = append(args, sqldriver.NamedValue{Ordinal: i + 1, Value: v})
			}
			_, err := exec.ExecContext(ctx, args)
			return err
		}); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

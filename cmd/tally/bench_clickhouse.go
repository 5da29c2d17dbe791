package main

// The aggregator's limit: clickhouse-go inserting the rows the aggregator
// writes for the same events, without Kafka, decoding, lookup or meters.

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/internal/chclient"
)

const benchLimitDatabase = "tally_bench_limit"

// benchCHLimit is the aggregator's (and so end to end's) limit.
type benchCHLimit struct {
	EventsPerS float64 `json:"events_per_s"` // each event: one events row (and its event_identities row) and one readings row
	Events     int     `json:"events"`
	Batch      int     `json:"batch_rows"`
	Inserters  int     `json:"inserters"`
	// Per batch: the events insert and the readings insert.
	BatchP50ms float64 `json:"batch_p50_ms"`
	BatchP99ms float64 `json:"batch_p99_ms"`
}

// benchCHRows holds one batch of rows column by column, as the aggregator
// would write them for the load generator's events and meter.
type benchCHRows struct {
	events   []any // the events columns, each a typed slice
	readings []any
}

const (
	benchEventsInsert = `INSERT INTO events (org_id, customer_id, id, type, source, time, time_ns,
		properties, ingested_at, kafka_partition, kafka_offset)`
	benchReadingsInsert = `INSERT INTO readings (org_id, meter_key, meter_revision, customer_id, event_id,
		time, time_ns, value, distinct_value, group_keys, group_values, ingested_at)`
)

func benchCHBatch(n int, runID string) (benchCHRows, error) {
	events, err := benchEvents(n, runID)
	if err != nil {
		return benchCHRows{}, err
	}
	now := time.Now().Truncate(time.Second)
	var (
		org, cust, id, typ, src, props []string
		ts, ingested                   []time.Time
		tns, offsets                   []int64
		parts                          []int32
		meter, distinct                []string
		rev                            []uint64
		value                          []decimal.Decimal
		gk, gv                         [][]string
	)
	for i, e := range events {
		org, cust, id, typ, src = append(org, benchOrg), append(cust, e.CustomerID), append(id, e.ID), append(typ, e.Type), append(src, e.Source)
		props = append(props, string(e.Properties))
		ts, ingested, tns = append(ts, e.Time.Truncate(time.Second)), append(ingested, now), append(tns, e.Time.UnixNano())
		parts, offsets = append(parts, int32(i%6)), append(offsets, int64(i))
		meter, rev, distinct = append(meter, "loadgen_tokens"), append(rev, 1), append(distinct, "")
		value = append(value, decimal.New(1, -1))
		gk, gv = append(gk, []string{loadgenGroupKey}), append(gv, []string{runID})
	}
	return benchCHRows{
		events:   []any{org, cust, id, typ, src, ts, tns, props, ingested, parts, offsets},
		readings: []any{org, meter, rev, cust, id, ts, tns, value, distinct, gk, gv, ingested},
	}, nil
}

func benchCHSend(ctx context.Context, conn driver.Conn, query string, cols []any) error {
	b, err := conn.PrepareBatch(ctx, query)
	if err != nil {
		return err
	}
	for i, c := range cols {
		if err := b.Column(i).Append(c); err != nil {
			_ = b.Abort()
			return fmt.Errorf("column %d: %w", i, err)
		}
	}
	return b.Send()
}

// benchClickHouseLimit inserts batches of the rows the aggregator writes
// into a migrated database of the server at addr, from as many goroutines
// as there are partitions (the aggregator writes each partition's batches
// on its own session), for cfg.Duration, then drops the database.
func benchClickHouseLimit(ctx context.Context, addr string, cfg benchConfig, w io.Writer) (*benchCHLimit, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Protocol: clickhouse.Native,
		MaxOpenConns: cfg.Partitions + 1, Auth: clickhouse.Auth{Database: "default", Username: "default"}})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := chclient.Migrate(ctx, conn, benchLimitDatabase); err != nil {
		return nil, err
	}
	defer func() { _ = conn.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+benchLimitDatabase) }()
	rows, err := benchCHBatch(cfg.ClickHouseBatch, "chlimit")
	if err != nil {
		return nil, err
	}
	qualify := func(q string) string { return "INSERT INTO " + benchLimitDatabase + "." + q[len("INSERT INTO "):] }
	evQ, rdQ := qualify(benchEventsInsert), qualify(benchReadingsInsert)
	// One batch outside the timing: connections.
	if err := benchCHSend(ctx, conn, evQ, rows.events); err != nil {
		return nil, fmt.Errorf("insert events: %w", err)
	}
	inserted, lat, elapsed, first := benchWorkers(ctx, cfg.Partitions, cfg.Duration, func() func() (int, error) {
		return func() (int, error) {
			if err := benchCHSend(ctx, conn, evQ, rows.events); err != nil {
				return 0, err
			}
			return cfg.ClickHouseBatch, benchCHSend(ctx, conn, rdQ, rows.readings)
		}
	})
	l := &benchCHLimit{EventsPerS: round3(float64(inserted) / elapsed.Seconds()), Events: int(inserted),
		Batch: cfg.ClickHouseBatch, Inserters: cfg.Partitions, BatchP50ms: ms(percentile(lat, 0.5)), BatchP99ms: ms(percentile(lat, 0.99))}
	fmt.Fprintf(w, "\naggregator limit (clickhouse-go into tally all's ClickHouse, %s: %d inserters, batches of %d events: events (+ event_identities) and readings rows, columnar)\n",
		cfg.Duration, l.Inserters, l.Batch)
	fmt.Fprintf(w, "%-20s %10.0f events/s, batch p50 %.0f ms p99 %.0f ms\n", "insert", l.EventsPerS, l.BatchP50ms, l.BatchP99ms)
	if first != nil {
		return l, fmt.Errorf("insert: %w", first)
	}
	return l, nil
}

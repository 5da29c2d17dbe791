package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/schemas"
)

// Row is the usage of one group in one window.
type Row struct {
	WindowStart, WindowEnd time.Time // in the query's time zone
	GroupValues            []string  // aligned with Query.GroupBy
	Events                 uint64    // readings (events) that made the value
	Value                  decimal.Decimal
}

// Reader runs usage queries against where readings are stored.
type Reader interface {
	// Read returns the non-empty windows of q sorted by window start,
	// then group values, or ErrTooManyRows.
	Read(ctx context.Context, q Query) ([]Row, error)
}

// ErrTooManyRows means the result exceeds the configured row limit.
var ErrTooManyRows = errors.New("usage result exceeds the row limit")

// ErrOutOfRange means a total (or the sum an average divides) is beyond
// the ±10^26 Tally computes exactly: ClickHouse's sum of Decimal128
// readings wraps around silently, so the read is refused rather than
// serving a wrong number (AggregationSpec.InRange proves which sums are
// exact; it also refuses a row of tens of millions of readings near
// 10^26, whose exactness it cannot prove). Every value is within range,
// but a sum of enough of them is not; a retry does not change it, a
// narrower window may. Reads fail with an *OutOfRangeError, which wraps it.
var ErrOutOfRange = errors.New("the total exceeds the range Tally can represent exactly (±10^26)")

// OutOfRangeError names the meter whose usage is out of range.
type OutOfRangeError struct {
	Meter string
}

func (e *OutOfRangeError) Error() string {
	return fmt.Sprintf("the usage of meter %q is out of range: %v", e.Meter, ErrOutOfRange)
}

// Unwrap makes errors.Is(err, ErrOutOfRange) true.
func (e *OutOfRangeError) Unwrap() error { return ErrOutOfRange }

// Observer is told about every ClickHouse call and result size; the query
// service's metrics implement it.
type Observer interface {
	ObserveClickHouse(operation string, start time.Time, err error)
	ObserveRows(n int)
}

// ClickHouseReader reads usage from the readings table.
type ClickHouseReader struct {
	conn     driver.Conn
	maxRows  int
	observer Observer
	logger   *slog.Logger
	copies   copyState
}

var _ Reader = (*ClickHouseReader)(nil)

// NewClickHouseReader returns a reader that refuses results of more than
// maxRows rows. observer may be nil.
func NewClickHouseReader(conn driver.Conn, maxRows int, observer Observer) *ClickHouseReader {
	return &ClickHouseReader{conn: conn, maxRows: maxRows, observer: observer,
		logger: slog.New(slog.DiscardHandler), copies: copyState{recheck: copyRecheck}}
}

// WithLogger makes r log which copies of readings it reads (tables.go)
// and returns r.
func (r *ClickHouseReader) WithLogger(logger *slog.Logger) *ClickHouseReader {
	r.logger = logger
	return r
}

// Read runs the query built by buildSQLFrom, on the copies of readings
// that are complete (tables.go). It asks for one row more than
// the limit so that an over-large result is refused whole rather than
// silently cut off.
func (r *ClickHouseReader) Read(ctx context.Context, q Query) ([]Row, error) {
	if q.OrgID == "" {
		return nil, errors.New("usage query without an organization") // isolation: never "all of them"
	}
	query, args, err := buildSQLFrom(q, r.maxRows+1, r.copies.get(ctx, r.conn, r.observer, r.logger))
	if err != nil {
		return nil, fmt.Errorf("query usage of meter %s: %w", q.MeterKey, err)
	}
	start := time.Now()
	out, err := r.read(ctx, q, query, args)
	if r.observer != nil {
		r.observer.ObserveClickHouse("read_usage", start, err)
	}
	if err != nil {
		return nil, err
	}
	if r.observer != nil {
		r.observer.ObserveRows(len(out))
	}
	return out, nil
}

func (r *ClickHouseReader) read(ctx context.Context, q Query, query string, args []any) ([]Row, error) {
	spec, err := q.Aggregation.Spec()
	if err != nil {
		return nil, err
	}
	rows, err := r.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query usage of meter %s: %w", q.MeterKey, err)
	}
	defer rows.Close()

	var (
		window time.Time
		groups = make([]string, len(q.GroupBy))
		count  uint64
		dec    decimal.Decimal
		uniq   uint64
		guard  float64
		magn   float64
	)
	dest := []any{}
	if q.WindowSize != WindowNone {
		dest = append(dest, &window)
	}
	for i := range groups {
		dest = append(dest, &groups[i])
	}
	dest = append(dest, &count)
	switch spec.Column {
	case schemas.ColumnDecimal:
		dest = append(dest, &dec)
	case schemas.ColumnUint:
		dest = append(dest, &uniq)
	case schemas.ColumnNone:
	default:
		return nil, fmt.Errorf("aggregation %s: unknown column kind %d", q.Aggregation, spec.Column)
	}
	if spec.GuardSQL != "" {
		dest = append(dest, &guard, &magn)
	}

	var out []Row
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read usage of meter %s: %w", q.MeterKey, err)
		}
		if count == 0 {
			continue // the one row of an aggregate without GROUP BY over nothing
		}
		if len(out) == r.maxRows {
			return nil, ErrTooManyRows
		}
		if !spec.InRange(count, dec, guard, magn) {
			return nil, &OutOfRangeError{Meter: q.MeterKey}
		}
		row := Row{GroupValues: append([]string(nil), groups...), WindowStart: q.From, WindowEnd: q.To, Events: count}
		if q.WindowSize != WindowNone {
			row.WindowStart = q.WindowSize.fromDB(window, q.Location)
			row.WindowEnd = q.WindowSize.End(row.WindowStart)
		}
		v := dec
		if spec.Column == schemas.ColumnUint {
			v = decimal.NewFromUint64(uniq)
		}
		row.Value = spec.Final(count, v)
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read usage of meter %s: %w", q.MeterKey, err)
	}
	return out, nil
}

package query

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/schemas"
)

// UsageRow is the usage of one group in one window.
type UsageRow struct {
	WindowStart, WindowEnd time.Time // in the query's time zone
	GroupValues            []string  // aligned with UsageQuery.GroupBy
	Value                  decimal.Decimal
}

// UsageReader runs usage queries. The handler declares it so that the
// HTTP layer does not depend on how usage is stored.
type UsageReader interface {
	// ReadUsage returns the non-empty windows of q sorted by window start,
	// then group values, or errTooManyRows.
	ReadUsage(ctx context.Context, q UsageQuery) ([]UsageRow, error)
}

// errTooManyRows means the result exceeds the configured row limit.
var errTooManyRows = errors.New("usage result exceeds the row limit")

// clickhouseReader reads usage from the readings table.
type clickhouseReader struct {
	conn    driver.Conn
	maxRows int
	metrics *metrics
}

var _ UsageReader = (*clickhouseReader)(nil)

// ReadUsage runs the query built by buildUsageSQL. It asks for one row
// more than the limit so that an over-large result is refused whole rather
// than silently cut off.
func (r *clickhouseReader) ReadUsage(ctx context.Context, q UsageQuery) ([]UsageRow, error) {
	query, args := buildUsageSQL(q, r.maxRows+1)
	start := time.Now()
	out, err := r.read(ctx, q, query, args)
	r.metrics.observeClickHouse("read_usage", start, err)
	if err != nil {
		return nil, err
	}
	r.metrics.rowsReturned.Observe(float64(len(out)))
	return out, nil
}

func (r *clickhouseReader) read(ctx context.Context, q UsageQuery, query string, args []any) ([]UsageRow, error) {
	rows, err := r.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query usage of meter %s: %w", q.MeterKey, err)
	}
	defer rows.Close()

	_, kind := aggregateSQL(q.Aggregation)
	var (
		window time.Time
		groups = make([]string, len(q.GroupBy))
		count  uint64
		dec    decimal.Decimal
		uniq   uint64
	)
	dest := []any{}
	if q.WindowSize != WindowNone {
		dest = append(dest, &window)
	}
	for i := range groups {
		dest = append(dest, &groups[i])
	}
	dest = append(dest, &count)
	switch kind {
	case valueDecimal:
		dest = append(dest, &dec)
	case valueUint:
		dest = append(dest, &uniq)
	}

	var out []UsageRow
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read usage of meter %s: %w", q.MeterKey, err)
		}
		if count == 0 {
			continue // the one row of an aggregate without GROUP BY over nothing
		}
		if len(out) == r.maxRows {
			return nil, errTooManyRows
		}
		row := UsageRow{GroupValues: append([]string(nil), groups...), WindowStart: q.From, WindowEnd: q.To}
		if q.WindowSize != WindowNone {
			row.WindowStart = q.WindowSize.fromDB(window, q.Location)
			row.WindowEnd = q.WindowSize.end(row.WindowStart)
		}
		row.Value = usageValue(q.Aggregation, count, dec, uniq)
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read usage of meter %s: %w", q.MeterKey, err)
	}
	return out, nil
}

// usageValue turns the columns of one row into the aggregation's value.
func usageValue(agg schemas.Aggregation, count uint64, dec decimal.Decimal, uniq uint64) decimal.Decimal {
	switch agg {
	case schemas.AggCount:
		return decimal.NewFromUint64(count)
	case schemas.AggUniqueCount:
		return decimal.NewFromUint64(uniq)
	case schemas.AggAvg:
		// sum / count of the window's events, rounded to the scale values
		// are stored with.
		return dec.DivRound(decimal.NewFromUint64(count), schemas.ValueScale)
	}
	return dec
}

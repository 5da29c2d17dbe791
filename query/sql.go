package query

import (
	"fmt"
	"strings"

	"github.com/tally-oss/tally/schemas"
)

// readingsTable holds one row per (meter revision, event); see
// schemas/clickhouse/0002_readings.sql. It is always read with FINAL so
// that the identical rows a retried insert wrote fold into one before they
// are aggregated: ClickHouse merges them only eventually, and a sum over
// unmerged parts would count an event twice.
const readingsTable = "readings FINAL"

// valueKind says how the aggregate column v is read.
type valueKind int

const (
	valueNone    valueKind = iota // COUNT: the value is the count n
	valueDecimal                  // Decimal(38, 12) into decimal.Decimal
	valueUint                     // UInt64 (uniqExact)
)

// aggregateSQL returns the expression of column v for an aggregation.
// Every query also selects count() AS n: it is COUNT's value, AVG's divisor,
// and tells an empty aggregate (a query without GROUP BY returns one row
// even when nothing matched) from a real one.
//
// AVG returns the exact sum and the count separately; the division happens
// in Go with decimals, so an average over any window is the average of the
// events, never an average of averages or a float.
// LATEST takes the value of the latest event by event time; the event id
// breaks ties so that equal times give the same answer on every read.
func aggregateSQL(agg schemas.Aggregation) (string, valueKind) {
	switch agg {
	case schemas.AggSum, schemas.AggAvg:
		return "sum(value)", valueDecimal
	case schemas.AggMax:
		return "max(value)", valueDecimal
	case schemas.AggMin:
		return "min(value)", valueDecimal
	case schemas.AggUniqueCount:
		return "uniqExact(distinct_value)", valueUint
	case schemas.AggLatest:
		return "argMax(value, tuple(time_ns, event_id))", valueDecimal
	}
	return "", valueNone // COUNT
}

// groupSQL returns the expression of a group key and its arguments.
// Readings store a meter's group values in an array aligned with the array
// of keys; the key is bound, never spliced into the text.
func groupSQL(key string) (string, []any) {
	if key == schemas.CustomerGroupKey {
		return "customer_id", nil
	}
	return "group_values[indexOf(group_keys, ?)]", []any{key}
}

// buildUsageSQL returns the SQL of a usage query and its bound arguments
// in placeholder order. It reads at most limit rows. Every value is a
// bound parameter; the only text that varies is chosen from constants
// here, and aliases (w, g0, g1, ..., n, v) name the result columns so that
// GROUP BY and ORDER BY do not repeat the bound expressions.
//
// The WHERE clause starts with the organization, then the meter and its
// revision (an old revision's readings are never served), then the time
// range twice: whole seconds on the time column, which the primary key and
// the monthly partitions can use, and the exact half-open range on time_ns,
// which honours fractional seconds.
func buildUsageSQL(q UsageQuery, limit int) (string, []any) {
	var cols, keys []string
	var args []any
	if q.WindowSize != WindowNone {
		cols = append(cols, q.WindowSize.sqlExpr()+" AS w")
		keys = append(keys, "w")
		args = append(args, q.Location.String())
	}
	for i, key := range q.GroupBy {
		expr, exprArgs := groupSQL(key)
		alias := fmt.Sprintf("g%d", i)
		cols = append(cols, expr+" AS "+alias)
		keys = append(keys, alias)
		args = append(args, exprArgs...)
	}
	cols = append(cols, "count() AS n")
	if expr, kind := aggregateSQL(q.Aggregation); kind != valueNone {
		cols = append(cols, expr+" AS v")
	}

	conds := []string{
		"org_id = ?", "meter_key = ?", "meter_revision = ?",
		"time >= toDateTime(?)", "time <= toDateTime(?)",
		"time_ns >= ?", "time_ns < ?",
	}
	args = append(args, q.OrgID, q.MeterKey, q.Revision,
		q.From.Unix(), q.To.Unix(), q.From.UnixNano(), q.To.UnixNano())
	if len(q.CustomerIDs) > 0 {
		conds = append(conds, "customer_id IN ("+placeholders(len(q.CustomerIDs))+")")
		for _, id := range q.CustomerIDs {
			args = append(args, id)
		}
	}
	for _, f := range q.Filters {
		expr, exprArgs := groupSQL(f.Key)
		conds = append(conds, expr+" IN ("+placeholders(len(f.Values))+")")
		args = append(args, exprArgs...)
		for _, v := range f.Values {
			args = append(args, v)
		}
	}

	var b strings.Builder
	b.WriteString("SELECT " + strings.Join(cols, ", "))
	b.WriteString(" FROM " + readingsTable)
	b.WriteString(" WHERE " + strings.Join(conds, " AND "))
	if len(keys) > 0 {
		b.WriteString(" GROUP BY " + strings.Join(keys, ", "))
		b.WriteString(" ORDER BY " + strings.Join(keys, ", "))
	}
	b.WriteString(" LIMIT ?")
	args = append(args, limit)
	return b.String(), args
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

package usage

import (
	"fmt"
	"strings"
	"time"

	"github.com/tally-oss/tally/schemas"
)

// The readings of one (meter revision, event) each (see
// schemas/clickhouse/0002_readings.sql) are stored in readings, where the
// aggregator writes them, and copied by materialized views in the same
// INSERT into two tables sorted for the two kinds of usage queries
// (0015-0020). A query that names its customers reads
// readingsByCustomerTable (sorted by customer before time, in granules of
// 1024 rows: one customer's 31 days read 8 times fewer rows than in
// readings); any other query reads readingsByDayTable (sorted by UTC day
// before customer: one day across all customers selects 47 marks at 10
// million events instead of the 703 of readings). Both are read with
// FINAL so that the identical rows a retried insert wrote fold into one
// before they are aggregated: ClickHouse merges them only eventually, and
// a sum over unmerged parts would count an event twice.
// A copy is read only once its copy migrations are recorded (copies,
// tables.go); until then the query reads readingsTable.
const (
	readingsByCustomerTable = "readings_by_customer FINAL"
	readingsByDayTable      = "readings_by_day FINAL"
	readingsTable           = "readings FINAL"
)

// Every usage query selects count() AS n, and the aggregation's folded
// column v from the aggregation table (schemas/aggregation.go) when it has
// one. n is COUNT's value and AVG's divisor, and it tells an empty
// aggregate (a query without GROUP BY returns one row even when nothing
// matched) from a real one. A fold that can leave the range of v (a sum of
// Decimal128, which wraps around) also selects its guard, a Float64
// estimate of v, as guard, and the sum of magnitudes that bounds the
// estimate's error as magnitude; the reader refuses a row the table says
// is out of range (AggregationSpec.InRange).

// groupSQL returns the expression of a group key and its arguments.
// Readings store a meter's group values in an array aligned with the array
// of keys; the key is bound, never spliced into the text.
func groupSQL(key string) (string, []any) {
	if key == schemas.CustomerGroupKey {
		return "customer_id", nil
	}
	return "group_values[indexOf(group_keys, ?)]", []any{key}
}

// buildSQL returns the SQL of a usage query and its bound arguments
// in placeholder order. It reads at most limit rows. Every value is a
// bound parameter; the only text that varies is chosen from constants
// here, and aliases (w, g0, g1, ..., n, v, guard, magnitude) name the result columns so that
// GROUP BY and ORDER BY do not repeat the bound expressions.
//
// The WHERE clause starts with the organization, then the meter and its
// revision (an old revision's readings are never served), then the time
// range twice: whole seconds on the time column, which the primary key and
// the monthly partitions can use, and the exact half-open range on time_ns,
// which honours fractional seconds. Then the UTC days of the range,
// redundant for the result but what readings_by_day's sort key uses:
// ClickHouse 18.16 does not derive a range of toDate(time) from one of
// time. A reading's time is its time_ns truncated to the second, so one in
// [From, To) has a day from From's to that of the range's last nanosecond.
func buildSQL(q Query, limit int) (string, []any, error) {
	return buildSQLFrom(q, limit, allCopies)
}

// buildSQLFrom is buildSQL reading only the copies of readings in ready,
// and readings instead of the others.
func buildSQLFrom(q Query, limit int, ready copies) (string, []any, error) {
	spec, err := q.Aggregation.Spec()
	if err != nil {
		return "", nil, err
	}
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
	if spec.Column != schemas.ColumnNone {
		cols = append(cols, spec.SQL+" AS v")
	}
	if spec.GuardSQL != "" {
		cols = append(cols, spec.GuardSQL+" AS guard", spec.MagnitudeSQL+" AS magnitude")
	}

	conds := []string{
		"org_id = ?", "meter_key = ?", "meter_revision = ?",
		"time >= toDateTime(?)", "time <= toDateTime(?)",
		"time_ns >= ?", "time_ns < ?",
		"toDate(time) >= toDate(?)", "toDate(time) <= toDate(?)",
	}
	args = append(args, q.OrgID, q.MeterKey, q.Revision,
		q.From.Unix(), q.To.Unix(), q.From.UnixNano(), q.To.UnixNano(),
		utcDay(q.From), utcDay(q.To.Add(-time.Nanosecond)))
	table := readingsByDayTable
	if len(q.CustomerIDs) > 0 {
		table = readingsByCustomerTable
		conds = append(conds, "customer_id IN ("+placeholders(len(q.CustomerIDs))+")")
		for _, id := range q.CustomerIDs {
			args = append(args, id)
		}
	}
	for _, f := range q.Filters {
		if f.Key == schemas.CustomerGroupKey {
			table = readingsByCustomerTable
		}
		expr, exprArgs := groupSQL(f.Key)
		conds = append(conds, expr+" IN ("+placeholders(len(f.Values))+")")
		args = append(args, exprArgs...)
		for _, v := range f.Values {
			args = append(args, v)
		}
	}

	switch {
	case table == readingsByDayTable && !ready.byDay, table == readingsByCustomerTable && !ready.byCustomer:
		table = readingsTable
	}

	var b strings.Builder
	b.WriteString("SELECT " + strings.Join(cols, ", "))
	b.WriteString(" FROM " + table)
	b.WriteString(" WHERE " + strings.Join(conds, " AND "))
	if len(keys) > 0 {
		b.WriteString(" GROUP BY " + strings.Join(keys, ", "))
		b.WriteString(" ORDER BY " + strings.Join(keys, ", "))
	}
	b.WriteString(" LIMIT ?")
	args = append(args, limit)
	return b.String(), args, nil
}

// utcDay is t's calendar day in UTC, as toDate(time) computes it for a
// DateTime('UTC') column.
func utcDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// SQL returns the SQL text and arguments the reader sends for q when it
// may return limit rows (the reader asks for one row more than its
// limit): what `tally bench` runs directly on ClickHouse to measure the
// query service against its limit.
func SQL(q Query, limit int) (string, []any, error) { return buildSQL(q, limit+1) }

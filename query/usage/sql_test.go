package usage

import (
	"reflect"
	"testing"
	"time"

	"github.com/tally-oss/tally/schemas"
)

// TestBuildUsageSQL asserts the SQL text and bound arguments of usage
// queries without a database (as OpenMeter's meter_query_test.go does);
// the integration tests run the same builder against ClickHouse.
func TestBuildUsageSQL(t *testing.T) {
	from := time.Date(2024, 3, 1, 5, 0, 0, 500_000_000, time.UTC)
	to := time.Date(2024, 4, 1, 4, 0, 0, 0, time.UTC)
	newYork := mustZone(t, "America/New_York")
	kolkata := mustZone(t, "Asia/Kolkata")
	base := func(agg schemas.Aggregation) Query {
		return Query{OrgID: "acme", MeterKey: "tokens", Revision: 42, Aggregation: agg,
			From: from, To: to, Location: time.UTC}
	}
	// A query that names its customers reads readings_by_customer (sorted
	// by customer first), any other readings_by_day (sorted by day first); both bound
	// the UTC days of [from, to): the day of its last nanosecond, not to's.
	const conds = " WHERE org_id = ? AND meter_key = ? AND meter_revision = ?" +
		" AND time >= toDateTime(?) AND time <= toDateTime(?) AND time_ns >= ? AND time_ns < ?" +
		" AND toDate(time) >= toDate(?) AND toDate(time) <= toDate(?)"
	const where, whereCustomers = " FROM readings_by_day FINAL" + conds, " FROM readings_by_customer FINAL" + conds
	whereArgs := []any{"acme", "tokens", uint64(42), from.Unix(), to.Unix(), from.UnixNano(), to.UnixNano(), "2024-03-01", "2024-04-01"}
	args := func(before []any, after ...any) []any {
		out := append(append(append([]any{}, before...), whereArgs...), after...)
		return out
	}

	tests := []struct {
		name     string
		query    func() Query
		wantSQL  string
		wantArgs []any
	}{
		{"sum", func() Query { return base(schemas.AggSum) },
			"SELECT count() AS n, sum(value) AS v, sum(toFloat64(value)) AS guard, sum(abs(toFloat64(value))) AS magnitude" + where + " LIMIT ?", args(nil, 101)},
		{"count", func() Query { return base(schemas.AggCount) },
			"SELECT count() AS n" + where + " LIMIT ?", args(nil, 101)},
		{"max", func() Query { return base(schemas.AggMax) },
			"SELECT count() AS n, max(value) AS v" + where + " LIMIT ?", args(nil, 101)},
		{"min", func() Query { return base(schemas.AggMin) },
			"SELECT count() AS n, min(value) AS v" + where + " LIMIT ?", args(nil, 101)},
		{"avg is sum and count, divided in Go", func() Query { return base(schemas.AggAvg) },
			"SELECT count() AS n, sum(value) AS v, sum(toFloat64(value)) AS guard, sum(abs(toFloat64(value))) AS magnitude" + where + " LIMIT ?", args(nil, 101)},
		{"unique count", func() Query { return base(schemas.AggUniqueCount) },
			"SELECT count() AS n, uniqExact(distinct_value) AS v" + where + " LIMIT ?", args(nil, 101)},
		{"latest by event time, then event id", func() Query { return base(schemas.AggLatest) },
			"SELECT count() AS n, argMax(value, tuple(time_ns, event_id)) AS v" + where + " LIMIT ?", args(nil, 101)},
		{"minute windows in UTC", func() Query {
			q := base(schemas.AggSum)
			q.WindowSize = WindowMinute
			return q
		}, "SELECT toStartOfMinute(time, ?) AS w, count() AS n, sum(value) AS v, sum(toFloat64(value)) AS guard, sum(abs(toFloat64(value))) AS magnitude" + where + " GROUP BY w ORDER BY w LIMIT ?",
			args([]any{"UTC"}, 101)},
		{"hour windows in a +05:30 zone", func() Query {
			q := base(schemas.AggCount)
			q.WindowSize, q.Location = WindowHour, kolkata
			return q
		}, "SELECT toStartOfHour(time, ?) AS w, count() AS n" + where + " GROUP BY w ORDER BY w LIMIT ?",
			args([]any{"Asia/Kolkata"}, 101)},
		{"day windows are dates in the zone", func() Query {
			q := base(schemas.AggSum)
			q.WindowSize, q.Location = WindowDay, newYork
			return q
		}, "SELECT toDate(time, ?) AS w, count() AS n, sum(value) AS v, sum(toFloat64(value)) AS guard, sum(abs(toFloat64(value))) AS magnitude" + where + " GROUP BY w ORDER BY w LIMIT ?",
			args([]any{"America/New_York"}, 101)},
		{"month windows", func() Query {
			q := base(schemas.AggMax)
			q.WindowSize, q.Location = WindowMonth, newYork
			return q
		}, "SELECT toStartOfMonth(time, ?) AS w, count() AS n, max(value) AS v" + where + " GROUP BY w ORDER BY w LIMIT ?",
			args([]any{"America/New_York"}, 101)},
		{"group by meter keys and customer, in request order", func() Query {
			q := base(schemas.AggSum)
			q.GroupBy = []string{"model", "customer_id", "region"}
			return q
		}, "SELECT group_values[indexOf(group_keys, ?)] AS g0, customer_id AS g1, group_values[indexOf(group_keys, ?)] AS g2," +
			" count() AS n, sum(value) AS v, sum(toFloat64(value)) AS guard, sum(abs(toFloat64(value))) AS magnitude" + where + " GROUP BY g0, g1, g2 ORDER BY g0, g1, g2 LIMIT ?",
			args([]any{"model", "region"}, 101)},
		{"customers", func() Query {
			q := base(schemas.AggCount)
			q.CustomerIDs = []string{"c1", "c2"}
			return q
		}, "SELECT count() AS n" + whereCustomers + " AND customer_id IN (?, ?) LIMIT ?", args(nil, "c1", "c2", 101)},
		{"group filters", func() Query {
			q := base(schemas.AggCount)
			q.Filters = []GroupFilter{{"customer_id", []string{"c3"}}, {"model", []string{"a", "b"}}}
			return q
		}, "SELECT count() AS n" + whereCustomers + " AND customer_id IN (?) AND group_values[indexOf(group_keys, ?)] IN (?, ?) LIMIT ?",
			args(nil, "c3", "model", "a", "b", 101)},
		{"everything: arguments follow placeholder order", func() Query {
			q := base(schemas.AggAvg)
			q.WindowSize, q.Location = WindowDay, newYork
			q.GroupBy = []string{"customer_id", "model"}
			q.CustomerIDs = []string{"c1"}
			q.Filters = []GroupFilter{{"model", []string{"gpt"}}}
			return q
		}, "SELECT toDate(time, ?) AS w, customer_id AS g0, group_values[indexOf(group_keys, ?)] AS g1, count() AS n, sum(value) AS v, sum(toFloat64(value)) AS guard, sum(abs(toFloat64(value))) AS magnitude" +
			whereCustomers + " AND customer_id IN (?) AND group_values[indexOf(group_keys, ?)] IN (?)" +
			" GROUP BY w, g0, g1 ORDER BY w, g0, g1 LIMIT ?",
			args([]any{"America/New_York", "model"}, "c1", "model", "gpt", 101)},
		{"a range ending at midnight UTC does not read the next day", func() Query {
			q := base(schemas.AggCount)
			q.From, q.To = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC)
			return q
		}, "SELECT count() AS n" + where + " LIMIT ?",
			[]any{"acme", "tokens", uint64(42), int64(1709251200), int64(1709337600), int64(1709251200000000000), int64(1709337600000000000), "2024-03-01", "2024-03-01", 101}},
		{"hostile values stay arguments", func() Query {
			q := base(schemas.AggCount)
			q.CustomerIDs = []string{"x') OR 1=1 --"}
			return q
		}, "SELECT count() AS n" + whereCustomers + " AND customer_id IN (?) LIMIT ?", args(nil, "x') OR 1=1 --", 101)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sql, gotArgs, err := buildSQL(tt.query(), 101)
			if err != nil {
				t.Fatal(err)
			}
			if sql != tt.wantSQL {
				t.Errorf("SQL\n got: %s\nwant: %s", sql, tt.wantSQL)
			}
			if !reflect.DeepEqual(gotArgs, tt.wantArgs) {
				t.Errorf("args\n got: %#v\nwant: %#v", gotArgs, tt.wantArgs)
			}
		})
	}
}

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestBuildSQLEveryAggregation builds a query for every aggregation, and
// refuses one that the aggregation table does not describe instead of
// serving it as something else.
func TestBuildSQLEveryAggregation(t *testing.T) {
	for _, agg := range schemas.Aggregations {
		if _, _, err := buildSQL(Query{Aggregation: agg, Location: time.UTC}, 1); err != nil {
			t.Errorf("%s: %v", agg, err)
		}
	}
	if sql, _, err := buildSQL(Query{Aggregation: "MEDIAN", Location: time.UTC}, 1); err == nil {
		t.Errorf("MEDIAN built as %s", sql)
	}
}

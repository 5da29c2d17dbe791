package usage

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

// TestReadOutOfRange: every value is below 10^26, but ClickHouse sums
// Decimal(38, 12) in a 128-bit integer that wraps around silently (two
// values of 9e25 sum to -1.6e26, three to -7.0e25, back inside the
// range). A SUM or AVG whose sum leaves ±10^26 is refused with an
// *OutOfRangeError naming the meter, never served; a sum just inside the
// range, narrower windows of the same readings, and the aggregations that
// pick one reading are served exactly.
func TestReadOutOfRange(t *testing.T) {
	conn := testenv.MigratedDatabase(t)
	day := func(d int) time.Time { return time.Date(2026, 2, d, 12, 0, 0, 0, time.UTC) }
	reading := func(meter, id string, d int, value string) testenv.Reading {
		return testenv.Reading{Org: "acme", Meter: meter, Revision: 1, Customer: "c1", EventID: id, Time: day(d), Value: value}
	}
	const big = "90000000000000000000000000" // 9e25
	testenv.InsertReadings(t, conn,
		reading("two", "a", 1, big), reading("two", "b", 2, big),
		reading("three", "a", 1, big), reading("three", "b", 2, big), reading("three", "c", 3, big),
		reading("negative", "a", 1, "-"+big), reading("negative", "b", 2, "-"+big),
		reading("inside", "a", 1, big), reading("inside", "b", 2, "9999999999999999999999999.999999999999"),
	)
	reader := NewClickHouseReader(conn, 100, nil)
	query := func(meter string, agg schemas.Aggregation) Query {
		return Query{OrgID: "acme", MeterKey: meter, Revision: 1, Aggregation: agg,
			From: day(1).Truncate(24 * time.Hour), To: day(28), Location: time.UTC}
	}

	for _, tt := range []struct {
		meter string
		agg   schemas.Aggregation
	}{
		{"two", schemas.AggSum}, {"two", schemas.AggAvg},
		{"three", schemas.AggSum}, {"three", schemas.AggAvg}, // wrapped back inside ±10^26: the guard sees it
		{"negative", schemas.AggSum}, {"negative", schemas.AggAvg},
	} {
		rows, err := reader.Read(context.Background(), query(tt.meter, tt.agg))
		var rangeErr *OutOfRangeError
		if !errors.Is(err, ErrOutOfRange) || !errors.As(err, &rangeErr) || rangeErr.Meter != tt.meter {
			t.Errorf("%s of meter %s: rows %+v, err %v; want an out-of-range error naming it", tt.agg, tt.meter, rows, err)
		}
	}

	served := func(q Query, want ...string) {
		t.Helper()
		rows, err := reader.Read(context.Background(), q)
		if err != nil {
			t.Errorf("%s of meter %s: %v", q.Aggregation, q.MeterKey, err)
			return
		}
		got := make([]string, len(rows))
		for i, r := range rows {
			got[i] = r.Value.String()
		}
		if len(got) != len(want) {
			t.Errorf("%s of meter %s = %v, want %v", q.Aggregation, q.MeterKey, got, want)
			return
		}
		for i := range want {
			if !rows[i].Value.Equal(decimal.RequireFromString(want[i])) {
				t.Errorf("%s of meter %s = %v, want %v", q.Aggregation, q.MeterKey, got, want)
			}
		}
	}
	served(query("inside", schemas.AggSum), "99999999999999999999999999.999999999999")
	served(query("inside", schemas.AggAvg), "50000000000000000000000000") // 99999999999999999999999999.999999999999 / 2, rounded to 12 places
	daily := query("three", schemas.AggSum)
	daily.WindowSize = WindowDay
	served(daily, big, big, big)
	served(query("three", schemas.AggMax), big)
	served(query("three", schemas.AggLatest), big)
	served(query("three", schemas.AggCount), "3")
}

// TestReadRangeBoundary: the range is exactly |total| < 10^26, whatever
// Float64 makes of the readings. The largest value alone, and readings
// that add up to exactly it (or its negative), are served; a total of
// exactly 10^26 is refused, as are four readings of 2^126 units of
// 10^-12 (8.5e25 each), whose sum ClickHouse wraps around to exactly 0,
// and a thousand readings of the largest value (wrapped many times over).
func TestReadRangeBoundary(t *testing.T) {
	conn := testenv.MigratedDatabase(t)
	day := func(d int) time.Time { return time.Date(2026, 2, d, 12, 0, 0, 0, time.UTC) }
	const largest = "99999999999999999999999999.999999999999"
	const quarter = "85070591730234615865843651.857942052864" // 2^126 × 10^-12
	var readings []testenv.Reading
	add := func(meter, value string, times int) {
		for i := range times {
			readings = append(readings, testenv.Reading{Org: "acme", Meter: meter, Revision: 1, Customer: "c1",
				EventID: fmt.Sprintf("%s-%d", meter, len(readings)), Time: day(1 + i%27), Value: value})
		}
	}
	add("largest", largest, 1)
	add("smallest", "-"+largest, 1)
	add("tenths", "10000000000000000000000000", 9) // 9 × 10^25 ...
	add("tenths", "9999999999999999999999999.999999999999", 1)
	add("negative-tenths", "-10000000000000000000000000", 9)
	add("negative-tenths", "-9999999999999999999999999.999999999999", 1)
	add("exactly", "10000000000000000000000000", 9)
	add("exactly", "9999999999999999999999999.999999999999", 1)
	add("exactly", "0.000000000001", 1)
	add("to-zero", quarter, 4)
	add("thousand", largest, 1000)
	testenv.InsertReadings(t, conn, readings...)
	reader := NewClickHouseReader(conn, 100, nil)
	query := func(meter string, agg schemas.Aggregation) Query {
		return Query{OrgID: "acme", MeterKey: meter, Revision: 1, Aggregation: agg,
			From: day(1).Truncate(24 * time.Hour), To: day(28), Location: time.UTC}
	}
	for _, tt := range []struct {
		meter string
		agg   schemas.Aggregation
		want  string // "" is out of range
	}{
		{"largest", schemas.AggSum, largest},
		{"largest", schemas.AggAvg, largest},
		{"smallest", schemas.AggSum, "-" + largest},
		{"tenths", schemas.AggSum, largest},
		{"tenths", schemas.AggAvg, "10000000000000000000000000"}, // largest / 10, rounded to 12 places
		{"negative-tenths", schemas.AggSum, "-" + largest},
		{"exactly", schemas.AggSum, ""},
		{"exactly", schemas.AggAvg, ""},
		{"to-zero", schemas.AggSum, ""},
		{"to-zero", schemas.AggAvg, ""},
		{"thousand", schemas.AggSum, ""},
		{"thousand", schemas.AggMax, largest},
		{"thousand", schemas.AggCount, "1000"},
	} {
		rows, err := reader.Read(context.Background(), query(tt.meter, tt.agg))
		switch {
		case tt.want == "" && !errors.Is(err, ErrOutOfRange):
			t.Errorf("%s of %s: rows %+v, err %v; want out of range", tt.agg, tt.meter, rows, err)
		case tt.want == "":
		case err != nil:
			t.Errorf("%s of %s: %v; want %s", tt.agg, tt.meter, err, tt.want)
		case len(rows) != 1 || !rows[0].Value.Equal(decimal.RequireFromString(tt.want)):
			t.Errorf("%s of %s = %+v, want %s", tt.agg, tt.meter, rows, tt.want)
		}
	}
}

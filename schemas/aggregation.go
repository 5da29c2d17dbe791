package schemas

import (
	"fmt"
	"math"

	"github.com/shopspring/decimal"
)

// This file describes every aggregation once: what a meter reads from an
// event, how ClickHouse folds a window's readings, how the folded column
// is scanned and turned into the final value, and the names other APIs
// use for it. Every layer (Evaluate, the usage SQL and reader, the
// compatible APIs) reads this table; an aggregation missing from it is an
// error everywhere, never served as something else.

// Input is what an aggregation reads from an event.
type Input int

// The inputs of an aggregation.
const (
	InputNone   Input = iota + 1 // nothing: every matching event counts one
	InputScalar                  // any scalar, as text (distinct values)
	InputNumber                  // a decimal number
)

// Column is how the folded column v of a usage query is scanned.
type Column int

// The column kinds of a usage query.
const (
	ColumnNone    Column = iota + 1 // no v column: the value is the row count n
	ColumnDecimal                   // Decimal(38, 12)
	ColumnUint                      // UInt64
)

// AggregationSpec is one row of the aggregation table.
type AggregationSpec struct {
	// Input says what Evaluate reads at value_property.
	Input Input
	// SQL folds the readings of one window and group into column v;
	// empty for ColumnNone. Readings hold value (Decimal), distinct_value
	// (String), time_ns and event_id.
	SQL    string
	Column Column
	// GuardSQL and MagnitudeSQL, when set, are two Float64 columns over
	// the same readings, for a fold that can leave the range of v (see
	// InRange): an estimate of v and the sum of the magnitudes it adds,
	// which bounds the estimate's rounding error. They are empty for a
	// fold that cannot leave the range (MAX, MIN and LATEST pick one
	// reading, COUNT and UNIQUE_COUNT are UInt64).
	GuardSQL, MagnitudeSQL string
	// Final turns a row's count n and column v into the value served.
	Final func(n uint64, v decimal.Decimal) decimal.Decimal
	// Additive says the values of disjoint sets of readings add up to the
	// value of them all: the groups of a charge add up to its units, so
	// its amount can be split over them (SUM and COUNT). The maximum, the
	// latest value or the distinct count of a whole is not the sum of its
	// parts'.
	Additive bool
	// LagoType is the aggregation_type of Lago's billable metrics;
	// MeasureName is the metering rule's aggregator in Measure's API.
	LagoType    string
	MeasureName string
}

// The range of a sum. foldLimit bounds column v: Decimal(38, ValueScale)
// holds |v| < 10^26, the range of a value (maxValue). wrapGap is how far
// from 0 a true total that wrapped around into (-10^26, 10^26) must be:
// 2^128 × 10^-12 (3.4e26, the period of the wrap-around) less 10^26.
// A Float64 estimate whose error is proven below errorLimit is then
// within guardLimit of 0 for every total in range, and outside it for
// every wrapped one (guardLimit + errorLimit <= wrapGap).
var foldLimit = maxValue

const (
	wrapGap    = 2.4e26
	guardLimit = 1.5e26
	errorLimit = 0.5e26
	// maxGuardedReadings bounds n in the error bound, where (n+4) × 2^-52
	// stays far below 1, so that the rounded sum of magnitudes bounds the
	// true one (readings of one window and group, a trillion).
	maxGuardedReadings = 1 << 40
)

// InRange reports whether a folded column v over n readings is the exact
// fold and within |v| < 10^26; guard and magnitude are the values of
// GuardSQL and MagnitudeSQL over the same readings.
//
// ClickHouse sums Decimal(38, 12) in a 128-bit integer that wraps around
// silently: two values of 9e25 sum to -1.6e26. Wrapping around is
// arithmetic modulo 2^128 units of 10^-12 (3.4e26), so v is the exact sum
// whenever the true total is within the integer's range (±1.7e26),
// whatever the partial sums did; otherwise it is off by a non-zero
// multiple of 3.4e26. A wrapped v inside ±10^26 therefore comes from a
// true total of at least wrapGap (2.4e26) in magnitude.
//
// guard estimates the true total in Float64, which does not wrap. Each
// reading converted to Float64 is off by at most 2 units of rounding
// (2^-53 of it) and n-1 additions in any order add at most (n-1) × 2^-53
// of the sum of magnitudes, so |guard - total| <= (n+1) × 2^-53 ×
// magnitude, to first order; InRange uses (n+4) × 2^-52 × magnitude, more
// than twice that. With that bound below errorLimit, |guard| < guardLimit
// holds for every total in range and fails for every wrapped one, so
// the answer is exact: every total in range is served, even at 10^26 less
// 10^-12, and nothing wrapped is. The bound reaches errorLimit only when
// n² × (average magnitude) reaches 2 × 10^41 (47 million readings near
// 10^26, or 470 million near 10^24, in one window and group); such a row
// is refused, though its total may be in range.
func (s AggregationSpec) InRange(n uint64, v decimal.Decimal, guard, magnitude float64) bool {
	if s.GuardSQL == "" {
		return true
	}
	if n > maxGuardedReadings || math.IsNaN(guard) || math.IsNaN(magnitude) {
		return false
	}
	roundingBound := float64(n+4) * 0x1p-52 * magnitude
	return v.Abs().LessThan(foldLimit) && roundingBound < errorLimit && math.Abs(guard) < guardLimit
}

func countFinal(n uint64, _ decimal.Decimal) decimal.Decimal { return decimal.NewFromUint64(n) }
func valueFinal(_ uint64, v decimal.Decimal) decimal.Decimal { return v }

// avgFinal divides the exact sum by the count in decimals, rounded to the
// scale values are stored with: an average over any window is the average
// of its events, never an average of averages or a float.
func avgFinal(n uint64, v decimal.Decimal) decimal.Decimal {
	if n == 0 {
		return decimal.Zero
	}
	return v.DivRound(decimal.NewFromUint64(n), ValueScale)
}

// sumGuard estimates sum(value) in Float64, which does not wrap around
// (ClickHouse 18.16 and later convert Decimal with toFloat64), and
// sumMagnitude bounds its rounding error.
const (
	sumGuard     = "sum(toFloat64(value))"
	sumMagnitude = "sum(abs(toFloat64(value)))"
)

var aggregationSpecs = map[Aggregation]AggregationSpec{
	AggSum: {Input: InputNumber, SQL: "sum(value)", Column: ColumnDecimal, GuardSQL: sumGuard, MagnitudeSQL: sumMagnitude, Final: valueFinal, Additive: true,
		LagoType: "sum_agg", MeasureName: "sum"},
	AggCount: {Input: InputNone, Column: ColumnNone, Final: countFinal, Additive: true, LagoType: "count_agg", MeasureName: "count"},
	AggMax:   {Input: InputNumber, SQL: "max(value)", Column: ColumnDecimal, Final: valueFinal, LagoType: "max_agg", MeasureName: "max"},
	AggMin:   {Input: InputNumber, SQL: "min(value)", Column: ColumnDecimal, Final: valueFinal, LagoType: "min_agg", MeasureName: "min"},
	// AVG folds to the exact sum; Final divides by the count.
	AggAvg: {Input: InputNumber, SQL: "sum(value)", Column: ColumnDecimal, GuardSQL: sumGuard, MagnitudeSQL: sumMagnitude, Final: avgFinal,
		LagoType: "avg_agg", MeasureName: "average"},
	AggUniqueCount: {Input: InputScalar, SQL: "uniqExact(distinct_value)", Column: ColumnUint, Final: valueFinal,
		LagoType: "unique_count_agg", MeasureName: "unique_count"},
	// LATEST takes the value of the latest event by event time; the event
	// id breaks ties so that equal times give the same answer on every read.
	AggLatest: {Input: InputNumber, SQL: "argMax(value, tuple(time_ns, event_id))", Column: ColumnDecimal, Final: valueFinal,
		LagoType: "latest_agg", MeasureName: "latest"},
}

// Spec returns the aggregation's row of the table, or an error for an
// aggregation that has none.
func (a Aggregation) Spec() (AggregationSpec, error) {
	spec, ok := aggregationSpecs[a]
	if !ok {
		return AggregationSpec{}, fmt.Errorf("unknown aggregation %q", string(a))
	}
	return spec, nil
}

// NeedsValue reports whether the aggregation reads value_property.
func (a Aggregation) NeedsValue() bool {
	spec, err := a.Spec()
	return err == nil && spec.Input != InputNone
}

// IsAdditive reports whether the aggregation's values add up over
// disjoint sets of readings (AggregationSpec.Additive); false for an
// unknown aggregation.
func (a Aggregation) IsAdditive() bool {
	spec, err := a.Spec()
	return err == nil && spec.Additive
}

// IsNumeric reports whether the aggregation needs a numeric value.
func (a Aggregation) IsNumeric() bool {
	spec, err := a.Spec()
	return err == nil && spec.Input == InputNumber
}

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
	// GuardSQL, when set, estimates column v in Float64 over the same
	// readings, for a fold that can leave the range of v (see InRange);
	// it is empty for a fold that cannot (MAX, MIN and LATEST pick one
	// reading, COUNT and UNIQUE_COUNT are UInt64).
	GuardSQL string
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

// foldLimit bounds column v: Decimal(38, ValueScale) holds |v| < 10^26,
// the range of a value (maxValue). guardLimit is the same bound for the
// Float64 estimate of GuardSQL.
var (
	foldLimit  = maxValue
	guardLimit = math.Pow10(ValuePrecision - ValueScale)
)

// InRange reports whether a folded column v, with guard the value of
// GuardSQL over the same readings, is the exact fold: |v| < 10^26.
//
// ClickHouse sums Decimal(38, 12) in a 128-bit integer that wraps around
// silently: two values of 9e25 sum to -1.6e26. Wrapping around is
// arithmetic modulo 2^128, so the sum is exact whenever the true total is
// within the integer's range (±1.7e26), whatever the partial sums did;
// past it, v is off by a multiple of 2^128 × 10^-12 (3.4e26). So |v| <
// 10^26 with |guard| < 10^26 is exact: a wrapped v inside ±10^26 comes
// from a true total of at least 2.4e26 in magnitude, and the Float64
// estimate of that total would have to be wrong by 1.4e26 to pass, which
// rounding (a relative error of about 10^-16 per reading) never comes
// near. Only a true total within rounding of ±10^26 may be refused
// though it fits.
func (s AggregationSpec) InRange(v decimal.Decimal, guard float64) bool {
	if s.GuardSQL == "" {
		return true
	}
	return v.Abs().LessThan(foldLimit) && math.Abs(guard) < guardLimit
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
// (ClickHouse 18.16 and later convert Decimal with toFloat64).
const sumGuard = "sum(toFloat64(value))"

var aggregationSpecs = map[Aggregation]AggregationSpec{
	AggSum: {Input: InputNumber, SQL: "sum(value)", Column: ColumnDecimal, GuardSQL: sumGuard, Final: valueFinal, Additive: true,
		LagoType: "sum_agg", MeasureName: "sum"},
	AggCount: {Input: InputNone, Column: ColumnNone, Final: countFinal, Additive: true, LagoType: "count_agg", MeasureName: "count"},
	AggMax:   {Input: InputNumber, SQL: "max(value)", Column: ColumnDecimal, Final: valueFinal, LagoType: "max_agg", MeasureName: "max"},
	AggMin:   {Input: InputNumber, SQL: "min(value)", Column: ColumnDecimal, Final: valueFinal, LagoType: "min_agg", MeasureName: "min"},
	// AVG folds to the exact sum; Final divides by the count.
	AggAvg: {Input: InputNumber, SQL: "sum(value)", Column: ColumnDecimal, GuardSQL: sumGuard, Final: avgFinal,
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

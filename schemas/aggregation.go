package schemas

import (
	"fmt"

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
	// Final turns a row's count n and column v into the value served.
	Final func(n uint64, v decimal.Decimal) decimal.Decimal
	// LagoType is the aggregation_type of Lago's billable metrics;
	// MeasureName is the metering rule's aggregator in Measure's API.
	LagoType    string
	MeasureName string
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

var aggregationSpecs = map[Aggregation]AggregationSpec{
	AggSum:   {Input: InputNumber, SQL: "sum(value)", Column: ColumnDecimal, Final: valueFinal, LagoType: "sum_agg", MeasureName: "sum"},
	AggCount: {Input: InputNone, Column: ColumnNone, Final: countFinal, LagoType: "count_agg", MeasureName: "count"},
	AggMax:   {Input: InputNumber, SQL: "max(value)", Column: ColumnDecimal, Final: valueFinal, LagoType: "max_agg", MeasureName: "max"},
	AggMin:   {Input: InputNumber, SQL: "min(value)", Column: ColumnDecimal, Final: valueFinal, LagoType: "min_agg", MeasureName: "min"},
	// AVG folds to the exact sum; Final divides by the count.
	AggAvg: {Input: InputNumber, SQL: "sum(value)", Column: ColumnDecimal, Final: avgFinal, LagoType: "avg_agg", MeasureName: "average"},
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

// IsNumeric reports whether the aggregation needs a numeric value.
func (a Aggregation) IsNumeric() bool {
	spec, err := a.Spec()
	return err == nil && spec.Input == InputNumber
}

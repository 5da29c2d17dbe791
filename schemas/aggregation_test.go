package schemas

import (
	"testing"

	"github.com/shopspring/decimal"
)

// TestAggregationTable keeps the table and the list of aggregations in
// step: every aggregation has a complete row, and nothing else has one.
func TestAggregationTable(t *testing.T) {
	if len(aggregationSpecs) != len(Aggregations) {
		t.Fatalf("%d rows in the aggregation table for %d aggregations", len(aggregationSpecs), len(Aggregations))
	}
	lago, measure := map[string]bool{}, map[string]bool{}
	for _, a := range Aggregations {
		spec, err := a.Spec()
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		if spec.Input == 0 || spec.Column == 0 || spec.Final == nil || spec.LagoType == "" || spec.MeasureName == "" {
			t.Errorf("%s: incomplete row %+v", a, spec)
		}
		if (spec.Column == ColumnNone) != (spec.SQL == "") {
			t.Errorf("%s: column %d with SQL %q", a, spec.Column, spec.SQL)
		}
		if lago[spec.LagoType] || measure[spec.MeasureName] {
			t.Errorf("%s: names %s/%s used twice", a, spec.LagoType, spec.MeasureName)
		}
		lago[spec.LagoType], measure[spec.MeasureName] = true, true
	}
	if _, err := Aggregation("MEDIAN").Spec(); err == nil {
		t.Error("an unknown aggregation has a row")
	}
	if Aggregation("MEDIAN").NeedsValue() || Aggregation("MEDIAN").IsNumeric() {
		t.Error("an unknown aggregation claims an input")
	}
}

func TestAggregationFinal(t *testing.T) {
	d := decimal.RequireFromString
	for _, tt := range []struct {
		agg  Aggregation
		n    uint64
		v    string
		want string
	}{
		{AggCount, 3, "0", "3"},
		{AggSum, 3, "0.3", "0.3"},
		{AggAvg, 3, "1", "0.333333333333"},
		{AggAvg, 0, "0", "0"},
		{AggUniqueCount, 5, "2", "2"},
		{AggLatest, 5, "-1.5", "-1.5"},
	} {
		spec, _ := tt.agg.Spec()
		if got := spec.Final(tt.n, d(tt.v)); !got.Equal(d(tt.want)) {
			t.Errorf("%s Final(%d, %s) = %s, want %s", tt.agg, tt.n, tt.v, got, tt.want)
		}
	}
}

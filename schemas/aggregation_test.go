package schemas

import (
	"strings"
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
		// A fold that adds readings up can leave the range of its
		// column and needs a guard; one that picks a reading cannot.
		if adds := strings.HasPrefix(spec.SQL, "sum("); adds != (spec.GuardSQL != "") {
			t.Errorf("%s: SQL %q with guard %q", a, spec.SQL, spec.GuardSQL)
		}
		if spec.GuardSQL != "" && spec.Column != ColumnDecimal {
			t.Errorf("%s: a guard on column kind %d", a, spec.Column)
		}
		if wantAdditive := a == AggSum || a == AggCount; spec.Additive != wantAdditive || a.IsAdditive() != wantAdditive {
			t.Errorf("%s: additive %v, want %v", a, spec.Additive, wantAdditive)
		}
	}
	if _, err := Aggregation("MEDIAN").Spec(); err == nil {
		t.Error("an unknown aggregation has a row")
	}
	if Aggregation("MEDIAN").NeedsValue() || Aggregation("MEDIAN").IsNumeric() || Aggregation("MEDIAN").IsAdditive() {
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

// TestAggregationInRange: a guarded fold is served only when both the
// exact column and its Float64 estimate are within ±10^26; the two sums
// of 9e25 that ClickHouse wraps to -1.6e26 are refused, as is a wrapped
// sum that lands back inside the range (its estimate is not).
func TestAggregationInRange(t *testing.T) {
	d := decimal.RequireFromString
	sum, _ := AggSum.Spec()
	latest, _ := AggLatest.Spec()
	for _, tt := range []struct {
		name  string
		spec  AggregationSpec
		v     string
		guard float64
		want  bool
	}{
		{"small", sum, "12.5", 12.5, true},
		{"largest value", sum, "99999999999999999999999999.999999999999", 1e26 - 1e10, true},
		{"smallest value", sum, "-99999999999999999999999999.999999999999", -1e26 + 1e10, true},
		{"10^26", sum, "100000000000000000000000000", 1e26, false},
		{"two of 9e25, wrapped", sum, "-160282366920938463463374607.431768211456", 1.8e26, false},
		{"wrapped back into range", sum, "-50000000000000000000000000", 2.9e26, false},
		{"exact past the range, estimate under it", sum, "100000000000000000000000001", 9.99999999e25, false},
		{"negative past the range", sum, "-120000000000000000000000000", -1.2e26, false},
		{"no guard: never out of range", latest, "-5", 1e30, true},
	} {
		if got := tt.spec.InRange(d(tt.v), tt.guard); got != tt.want {
			t.Errorf("%s: InRange(%s, %g) = %v, want %v", tt.name, tt.v, tt.guard, got, tt.want)
		}
	}
}

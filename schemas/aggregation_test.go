package schemas

import (
	"math"
	"math/big"
	"math/rand/v2"
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
		if (spec.GuardSQL == "") != (spec.MagnitudeSQL == "") {
			t.Errorf("%s: guard %q with magnitude %q", a, spec.GuardSQL, spec.MagnitudeSQL)
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

// TestAggregationInRange: a guarded fold is served only when the exact
// column is within ±10^26, its Float64 estimate within guardLimit and the
// estimate's error bound below errorLimit; the two sums of 9e25 that
// ClickHouse wraps to -1.6e26 are refused, as is a wrapped sum that lands
// back inside the range (its estimate is not), while the largest total,
// whose estimate rounds to 10^26 or beyond, is served.
func TestAggregationInRange(t *testing.T) {
	d := decimal.RequireFromString
	sum, _ := AggSum.Spec()
	latest, _ := AggLatest.Spec()
	for _, tt := range []struct {
		name        string
		spec        AggregationSpec
		n           uint64
		v           string
		guard, magn float64
		want        bool
	}{
		{"small", sum, 2, "12.5", 12.5, 12.5, true},
		{"largest value", sum, 1, "99999999999999999999999999.999999999999", 1e26, 1e26, true},
		{"smallest value", sum, 1, "-99999999999999999999999999.999999999999", -1e26, 1e26, true},
		{"largest value from cancelling readings", sum, 3, "99999999999999999999999999.999999999999", 1e26, 2.8e26, true},
		{"10^26", sum, 2, "100000000000000000000000000", 1e26, 1e26, false},
		{"two of 9e25, wrapped", sum, 2, "-160282366920938463463374607.431768211456", 1.8e26, 1.8e26, false},
		{"wrapped back into range", sum, 3, "-50000000000000000000000000", 2.9e26, 2.9e26, false},
		{"wrapped to 0", sum, 4, "0", 3.4e26, 3.4e26, false},
		{"exact past the range, estimate under it", sum, 2, "100000000000000000000000001", 9.99999999e25, 9.99999999e25, false},
		{"negative past the range", sum, 2, "-120000000000000000000000000", -1.2e26, 1.2e26, false},
		{"estimate too coarse to tell", sum, 60_000_000, "5", 0, 60_000_000 * 9e25, false},
		{"many small readings", sum, 1 << 39, "1000", 1000, 1 << 39, true},
		{"more readings than the bound allows", sum, 1<<40 + 1, "1000", 1000, 1 << 40, false},
		{"NaN estimate", sum, 1, "1", math.NaN(), 1, false},
		{"no guard: never out of range", latest, 5, "-5", 1e30, 1e30, true},
	} {
		if got := tt.spec.InRange(tt.n, d(tt.v), tt.guard, tt.magn); got != tt.want {
			t.Errorf("%s: InRange(%d, %s, %g, %g) = %v, want %v", tt.name, tt.n, tt.v, tt.guard, tt.magn, got, tt.want)
		}
	}
	// The limits keep a wrapped total's estimate apart from a total's in
	// range: 2^128 × 10^-12 - 10^26 is at least wrapGap, which holds both.
	period := new(big.Float).SetInt(new(big.Int).Lsh(big.NewInt(1), 128))
	gap, _ := period.Quo(period, big.NewFloat(1e12)).Sub(period, big.NewFloat(1e26)).Float64()
	if gap < wrapGap || guardLimit+errorLimit > wrapGap || guardLimit-errorLimit < 1e26 {
		t.Errorf("limits: gap %g, wrapGap %g, guardLimit %g, errorLimit %g", gap, float64(wrapGap), float64(guardLimit), float64(errorLimit))
	}
}

// TestAggregationInRangeProperty: sums of random readings (near the
// largest value, mixed signs, in random order) added as ClickHouse would
// are served exactly when their total is in range and refused otherwise.
func TestAggregationInRangeProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	sum, _ := AggSum.Spec()
	largest := decimal.RequireFromString("99999999999999999999999999.999999999999")
	for i := range 20000 {
		var runs []struct {
			n     int
			value decimal.Decimal
		}
		for range 1 + rng.IntN(6) {
			value := largest.Mul(decimal.NewFromFloat(rng.Float64())).Round(ValueScale)
			switch rng.IntN(4) {
			case 0:
				value = largest
			case 1:
				value = decimal.New(rng.Int64N(1000), -int32(rng.IntN(13)))
			}
			if rng.IntN(2) == 0 {
				value = value.Neg()
			}
			runs = append(runs, struct {
				n     int
				value decimal.Decimal
			}{1 + rng.IntN(4), value})
		}
		n, total, v, guard, magnitude := wrapSum(runs)
		inRange := total.Abs().LessThan(maxValue)
		got := sum.InRange(n, v, guard, magnitude)
		if got != inRange || (got && !v.Equal(total)) {
			t.Fatalf("case %d: readings %v: total %s, v %s, guard %g: InRange = %v, want %v", i, runs, total, v, guard, got, inRange)
		}
	}
}

// wrapSum simulates ClickHouse's sum of Decimal(38, 12) readings given as
// runs of (count, value): the exact total, the Decimal128 column v it
// wraps around to (modulo 2^128 units of 10^-12), and the Float64 sums of
// the values and of their magnitudes, added one reading at a time in the
// order given.
func wrapSum(runs []struct {
	n     int
	value decimal.Decimal
}) (n uint64, total, v decimal.Decimal, guard, magnitude float64) {
	units := new(big.Int)
	for _, r := range runs {
		u := r.value.Shift(ValueScale).BigInt()
		units.Add(units, u.Mul(u, big.NewInt(int64(r.n))))
		f := r.value.InexactFloat64()
		for range r.n {
			guard += f
			magnitude += math.Abs(f)
		}
		n += uint64(r.n)
	}
	total = decimal.NewFromBigInt(units, -ValueScale)
	mod := new(big.Int).Lsh(big.NewInt(1), 128)
	half := new(big.Int).Lsh(big.NewInt(1), 127)
	wrapped := new(big.Int).Mod(units, mod)
	if wrapped.Cmp(half) >= 0 {
		wrapped.Sub(wrapped, mod)
	}
	return n, total, decimal.NewFromBigInt(wrapped, -ValueScale), guard, magnitude
}

// TestAggregationInRangeRounding: the Float64 estimate that tells a
// wrapped sum from an exact one is itself rounded, by up to about n × 2^-53
// of the sum of magnitudes. Readings ordered so that the estimate absorbs
// a whole wrap-around: 2^27 readings of 2^86 (exact in Float64), then
// 340282367 readings of 10^18, each below half a unit in the last place
// of the running estimate and so lost, then 2^27 readings of -2^86. The
// true total is 3.4e26, ClickHouse's column wraps it to 7.9e18 and the
// estimate is 0: it must be refused, not served as 7.9e18.
func TestAggregationInRangeRounding(t *testing.T) {
	if testing.Short() {
		t.Skip("adds 6e8 Float64 readings")
	}
	big86 := decimal.NewFromBigInt(new(big.Int).Lsh(big.NewInt(1), 86), 0)
	n, total, v, guard, magnitude := wrapSum([]struct {
		n     int
		value decimal.Decimal
	}{{1 << 27, big86}, {340282367, decimal.New(1, 18)}, {1 << 27, big86.Neg()}})
	if v.Equal(total) || v.Abs().GreaterThanOrEqual(maxValue) || guard != 0 {
		t.Fatalf("the construction does not wrap as intended: n %d total %s v %s guard %g magnitude %g", n, total, v, guard, magnitude)
	}
	sum, _ := AggSum.Spec()
	if sum.InRange(n, v, guard, magnitude) {
		t.Errorf("InRange(%d, %s, guard %g, magnitude %g) of true total %s = true; it served a wrapped sum", n, v, guard, magnitude, total)
	}
}

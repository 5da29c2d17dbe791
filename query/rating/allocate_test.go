package rating

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shopspring/decimal"
)

func TestAllocate(t *testing.T) {
	tests := []struct {
		name    string
		total   int64
		weights []string
		want    []int64
	}{
		{"no groups", 100, nil, []int64{}},
		{"one group takes all", 100, []string{"7"}, []int64{100}},
		{"exact shares", 10, []string{"1", "2", "3", "4"}, []int64{1, 2, 3, 4}},
		{"thirds: the leftover cent to the first", 100, []string{"1", "1", "1"}, []int64{34, 33, 33}},
		{"negative thirds mirror positive ones", -100, []string{"1", "1", "1"}, []int64{-34, -33, -33}},
		{"a tie goes to the earlier group", 1, []string{"1", "1"}, []int64{1, 0}},
		{"largest remainders win", 7, []string{"0.5", "0.25", "0.25"}, []int64{3, 2, 2}}, // 3.5, 1.75, 1.75
		{"largest remainder, uneven", 5, []string{"3", "1"}, []int64{4, 1}},              // 3.75, 1.25
		{"fractional weights", 100, []string{"0.001", "0.002"}, []int64{33, 67}},         // 33.3, 66.7
		{"mixed scales", 10, []string{"1.5", "2", "0.25", "0.25"}, []int64{4, 5, 1, 0}},  // 3.75, 5, 0.625, 0.625
		{"zero weight gets nothing", 100, []string{"0", "3", "1"}, []int64{0, 75, 25}},   // 0, 75, 25
		{"negative weights only", -30, []string{"-1", "-2"}, []int64{-10, -20}},          // same proportions
		{"negative weights, positive total", 30, []string{"-1", "-2"}, []int64{10, 20}},  // same proportions
		{"mixed signs stay proportional", 10, []string{"3", "-1"}, []int64{15, -5}},      // 3/2, -1/2 of 10
		{"weights adding up to zero: nothing allocated", 100, []string{"5", "-5"}, []int64{0, 0}},
		{"all weights zero: nothing allocated", 100, []string{"0", "0"}, []int64{0, 0}},
		{"zero total", 0, []string{"1", "2"}, []int64{0, 0}},
		{"largest total", math.MaxInt64, []string{"1", "1"}, []int64{math.MaxInt64/2 + 1, math.MaxInt64 / 2}},
		{"smallest total", math.MinInt64, []string{"1", "1"}, []int64{math.MinInt64 / 2, math.MinInt64 / 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			weights := make([]decimal.Decimal, len(tt.weights))
			for i, w := range tt.weights {
				weights[i] = decimal.RequireFromString(w)
			}
			got, err := allocate(tt.total, weights)
			if err != nil {
				t.Fatalf("allocate: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("allocate(%d, %v) = %v, want %v", tt.total, tt.weights, got, tt.want)
			}
		})
	}
}

func TestAllocateOverflow(t *testing.T) {
	// Mixed signs can give a part larger than the total.
	_, err := allocate(math.MaxInt64, []decimal.Decimal{decimal.NewFromInt(2), decimal.NewFromInt(-1)})
	if !errors.Is(err, ErrOverflow) {
		t.Errorf("allocate: err %v, want ErrOverflow", err)
	}
}

// For any weights whose sum is not zero, the parts add up to the total
// and each is within one minor unit of its exact share.
func TestAllocateAddsUp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		total := rng.Int64N(2_000_001) - 1_000_000
		weights := make([]decimal.Decimal, 1+rng.IntN(8))
		sum := decimal.Zero
		for i := range weights {
			weights[i] = decimal.New(rng.Int64N(20_001)-5_000, -int32(rng.IntN(4)))
			sum = sum.Add(weights[i])
		}
		if sum.IsZero() {
			continue
		}
		parts, err := allocate(total, weights)
		if err != nil {
			t.Fatalf("allocate(%d, %v): %v", total, weights, err)
		}
		var added int64
		for i, part := range parts {
			added += part
			exact := decimal.NewFromInt(total).Mul(weights[i]).DivRound(sum, 20)
			if exact.Sub(decimal.NewFromInt(part)).Abs().GreaterThanOrEqual(decimal.NewFromInt(1)) {
				t.Fatalf("allocate(%d, %v): part %d is %d, exact share %s", total, weights, i, part, exact)
			}
		}
		if added != total {
			t.Fatalf("allocate(%d, %v) = %v, adds up to %d", total, weights, parts, added)
		}
	}
}

package rating_test

import (
	"errors"
	"math"
	"testing"

	"github.com/tally-oss/tally/query/rating"
)

func TestRound(t *testing.T) {
	tests := []struct {
		currency string
		amount   string
		want     string
		minor    int64
	}{
		// JPY: exponent 0, whole yen.
		{"JPY", "0.5", "1", 1},
		{"JPY", "0.4999", "0", 0},
		{"JPY", "-0.5", "-1", -1},
		{"JPY", "1234.5", "1235", 1235},
		{"JPY", "1234", "1234", 1234},

		// USD: exponent 2; halves go away from zero, on both sides.
		{"USD", "0.005", "0.01", 1},
		{"USD", "-0.005", "-0.01", -1},
		{"USD", "0.0049999", "0", 0},
		{"USD", "-0.0049999", "0", 0},
		{"USD", "1.015", "1.02", 102},
		{"USD", "-1.015", "-1.02", -102},
		{"USD", "2.675", "2.68", 268}, // 2.67499999... as a float64; exact here
		{"USD", "0.125", "0.13", 13},  // not banker's rounding (which gives 0.12)
		{"USD", "12", "12", 1200},
		{"USD", "0", "0", 0},
		{"USD", "11.00005", "11", 1100},
		{"USD", "92233720368547758.07", "92233720368547758.07", math.MaxInt64},
		{"USD", "-92233720368547758.08", "-92233720368547758.08", math.MinInt64},

		// BHD: exponent 3, fils.
		{"BHD", "0.0005", "0.001", 1},
		{"BHD", "-0.0005", "-0.001", -1},
		{"BHD", "1.2345", "1.235", 1235},
		{"BHD", "0.00049", "0", 0},

		// CLF: exponent 4.
		{"CLF", "0.00005", "0.0001", 1},
	}
	for _, tt := range tests {
		t.Run(tt.currency+" "+tt.amount, func(t *testing.T) {
			rounded, minor, err := rating.Round(dec(tt.amount), tt.currency)
			if err != nil {
				t.Fatalf("Round: %v", err)
			}
			if !rounded.Equal(dec(tt.want)) || minor != tt.minor {
				t.Errorf("Round(%s %s) = %s, %d; want %s, %d", tt.amount, tt.currency, rounded, minor, tt.want, tt.minor)
			}
		})
	}
}

func TestRoundErrors(t *testing.T) {
	tests := []struct {
		currency string
		amount   string
		want     error
	}{
		{"usd", "1", rating.ErrUnknownCurrency}, // codes are upper case
		{"XXX", "1", rating.ErrUnknownCurrency}, // no minor unit
		{"", "1", rating.ErrUnknownCurrency},
		{"USD", "92233720368547758.08", rating.ErrOverflow},
		{"USD", "92233720368547758.075", rating.ErrOverflow}, // rounds up past the limit
		{"USD", "-92233720368547758.09", rating.ErrOverflow},
		{"JPY", "1e30", rating.ErrOverflow},
	}
	for _, tt := range tests {
		rounded, minor, err := rating.Round(dec(tt.amount), tt.currency)
		if !errors.Is(err, tt.want) {
			t.Errorf("Round(%s %q) = %s, %d, %v; want error %v", tt.amount, tt.currency, rounded, minor, err, tt.want)
		}
	}
}

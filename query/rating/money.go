package rating

import (
	"fmt"
	"math"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/schemas"
)

// Money is an amount rounded to its currency's minor unit, twice: Amount
// in major units (12.34 USD) and Minor in minor units (1234 cents). They
// always agree: Amount = Minor × 10^-exponent.
type Money struct {
	Amount decimal.Decimal
	Minor  int64
}

// Round rounds amount once to the minor unit of currency (ISO 4217
// exponent from schemas.CurrencyExponent), half away from zero: 0.005 USD
// is 0.01, -0.005 USD is -0.01, 0.5 JPY is 1. minor is the rounded amount
// in minor units; ErrOverflow when it does not fit an int64,
// ErrUnknownCurrency for a currency without a known exponent.
func Round(amount decimal.Decimal, currency string) (rounded decimal.Decimal, minor int64, err error) {
	exponent, err := exponentOf(currency)
	if err != nil {
		return decimal.Decimal{}, 0, err
	}
	// decimal's Round is half away from zero (tested in money_test.go).
	rounded = amount.Round(exponent)
	minorUnits := rounded.Shift(exponent).BigInt() // an integer: rounded has exponent decimals
	if !minorUnits.IsInt64() {
		return decimal.Decimal{}, 0, fmt.Errorf("%w: %s %s", ErrOverflow, amount, currency)
	}
	return rounded, minorUnits.Int64(), nil
}

func exponentOf(currency string) (int32, error) {
	exponent, ok := schemas.CurrencyExponent(currency)
	if !ok {
		return 0, fmt.Errorf("%w %q", ErrUnknownCurrency, currency)
	}
	return exponent, nil
}

// minorMoney is Money from an amount already in minor units.
func minorMoney(minor int64, exponent int32) Money {
	return Money{Amount: decimal.New(minor, -exponent), Minor: minor}
}

// addMinor adds minor amounts, failing rather than wrapping around.
func addMinor(a, b int64) (int64, error) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, fmt.Errorf("%w: %d + %d", ErrOverflow, a, b)
	}
	return a + b, nil
}

// subMinor subtracts minor amounts, failing rather than wrapping around.
func subMinor(a, b int64) (int64, error) {
	if (b < 0 && a > math.MaxInt64+b) || (b > 0 && a < math.MinInt64+b) {
		return 0, fmt.Errorf("%w: %d - %d", ErrOverflow, a, b)
	}
	return a - b, nil
}

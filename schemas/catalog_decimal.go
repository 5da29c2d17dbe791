package schemas

import (
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"

	"github.com/shopspring/decimal"
)

// Charge amounts, tier bounds and package sizes are exact decimals, held
// to the precision usage is stored with (Decimal(38, ValueScale)): pricing
// compares tier bounds with usage totals, and neither side is rounded.

// maxDecimalText bounds the text of a decimal: 38 digits, a sign, a point
// and an exponent fit with room to spare, and the big-integer work on a
// value stays small.
const maxDecimalText = 100

// decimalNumber is the text a decimal may have, quoted or not: JSON's
// number syntax, leading zeros allowed. It keeps out what
// decimal.NewFromString would also take (" 1", "+1", "1.", ".5", "−1").
var decimalNumber = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// number reads a JSON number or numeric string as an exact decimal; a
// JSON number never goes through float64, so 0.1 and "0.1" are the same
// value. The result is normalised (no trailing fractional zeros); its
// precision is checked by Validate. nil when absent.
func (o *jsonMembers) number(name string) *decimal.Decimal {
	raw := o.take(name)
	if raw == nil {
		return nil
	}
	text := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &text); err != nil {
			o.fail(name, "must be a decimal number or numeric string")
			return nil
		}
	}
	if len(text) > maxDecimalText {
		o.fail(name, "is %d characters long, at most %d allowed for a decimal", len(text), maxDecimalText)
		return nil
	}
	if !decimalNumber.MatchString(text) {
		o.fail(name, "must be a decimal number or numeric string such as \"0.05\", found %s", truncateRaw(raw))
		return nil
	}
	d, err := decimal.NewFromString(text)
	if err != nil {
		o.fail(name, "%s is out of range: at most %d integer and %d fractional digits", truncateRaw(raw), ValuePrecision-ValueScale, ValueScale)
		return nil
	}
	d = normalizeDecimal(d)
	return &d
}

// decimalProblem says why d does not fit the Decimal(38, ValueScale)
// columns usage is stored in (at most ValueScale fractional and
// ValuePrecision-ValueScale integer digits), or returns "". It works on the
// coefficient and exponent, so that a value such as 1e-1000000000 is
// refused without being expanded.
func decimalProblem(d decimal.Decimal) string {
	c := new(big.Int).Abs(d.Coefficient())
	if c.Sign() == 0 {
		return ""
	}
	exp := int64(d.Exponent())
	ten, rem := big.NewInt(10), new(big.Int)
	for exp < -ValueScale { // strip trailing fractional zeros, as far as needed
		if q, r := new(big.Int).QuoRem(c, ten, rem); r.Sign() == 0 {
			c, exp = q, exp+1
			continue
		}
		return fmt.Sprintf("has more than %d digits after the decimal point", ValueScale)
	}
	if int64(len(c.String()))+exp > ValuePrecision-ValueScale {
		return fmt.Sprintf("has more than %d digits before the decimal point", ValuePrecision-ValueScale)
	}
	return ""
}

// normalizeDecimal drops trailing fractional zeros ("1.50" becomes 1.5),
// so that equal amounts are stored and compared alike.
func normalizeDecimal(d decimal.Decimal) decimal.Decimal {
	c := d.Coefficient()
	if c.Sign() == 0 {
		return decimal.Decimal{}
	}
	exp := d.Exponent()
	ten, rem := big.NewInt(10), new(big.Int)
	for exp < 0 {
		q, r := new(big.Int).QuoRem(c, ten, rem)
		if r.Sign() != 0 {
			break
		}
		c, exp = q, exp+1
	}
	return decimal.NewFromBigInt(c, exp)
}

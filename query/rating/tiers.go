package rating

import (
	"fmt"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/schemas"
)

// tier is a range of a graduated or volume charge as pricing reads it:
// the units above lower, up to and including upper (nil: no bound).
type tier struct {
	lower   decimal.Decimal
	upper   *decimal.Decimal
	perUnit decimal.Decimal
	flat    decimal.Decimal
}

// tiersOf reads ranges as consecutive tiers. A tier's lower bound is the
// previous tier's ToValue (0 for the first); FromValue is not read, so
// Lago's integer notation (0-100, 101-500, 501-) and the continuous one
// (0-100, 100-500, 500-) price identically: 100.5 units are 0.5 units into
// the second tier either way. That FromValue agrees with this is plan
// validation's check, not pricing's.
//
// Ranges must be non-empty, every ToValue above the previous one, and only
// the last unbounded; anything else is ErrInvalidCharge rather than a
// guess at what was meant.
func tiersOf(ranges []schemas.Range) ([]tier, error) {
	if len(ranges) == 0 {
		return nil, fmt.Errorf("%w: no ranges", ErrInvalidCharge)
	}
	tiers := make([]tier, len(ranges))
	lower := decimal.Zero
	for i, r := range ranges {
		last := i == len(ranges)-1
		switch {
		case last && r.ToValue != nil:
			return nil, fmt.Errorf("%w: range %d: the last range must have no to_value", ErrInvalidCharge, i)
		case !last && r.ToValue == nil:
			return nil, fmt.Errorf("%w: range %d: only the last range may have no to_value", ErrInvalidCharge, i)
		case !last && !r.ToValue.GreaterThan(lower):
			return nil, fmt.Errorf("%w: range %d: to_value %s is not above %s", ErrInvalidCharge, i, r.ToValue, lower)
		}
		tiers[i] = tier{lower: lower, upper: r.ToValue, perUnit: r.PerUnitAmount, flat: r.FlatAmount}
		if r.ToValue != nil {
			lower = *r.ToValue
		}
	}
	return tiers, nil
}

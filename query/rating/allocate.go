package rating

import (
	"fmt"
	"math/big"
	"slices"

	"github.com/shopspring/decimal"
)

// allocate splits total minor units over weights in proportion to them
// (Rate calls it for additive charges only, whose groups' units add up to
// the charge's),
// by the largest-remainder method, so that the parts add up to total
// exactly:
//
//  1. Each part gets the floor of its exact share total × w / Σw.
//  2. The minor units left over (fewer than there are parts) go one each
//     to the parts with the largest remainders; equal remainders go to the
//     earlier part.
//
// A negative total is split as its magnitude and negated, so that ties
// favour the earlier part either way (-10 over three equal weights is -4,
// -3, -3, the mirror of 4, 3, 3).
//
// Weights may have mixed signs (a SUM meter's groups net refunds): shares
// stay proportional and still add up to total, so a negative group gets a
// negative part. When the weights add up to zero there is no proportion to
// follow: every part is 0, whatever total is, and the caller says what
// that means.
func allocate(total int64, weights []decimal.Decimal) ([]int64, error) {
	parts := make([]int64, len(weights))
	sum := decimal.Zero
	for _, w := range weights {
		sum = sum.Add(w)
	}
	if sum.IsZero() || total == 0 {
		return parts, nil
	}
	// Integer weights with one common scale, and a positive sum.
	scale := sum.Exponent()
	for _, w := range weights {
		scale = min(scale, w.Exponent())
	}
	integer := func(d decimal.Decimal) *big.Int {
		i := d.Shift(-scale).BigInt()
		if sum.IsNegative() {
			i.Neg(i)
		}
		return i
	}
	denominator := integer(sum)
	magnitude := new(big.Int).Abs(big.NewInt(total))

	shares := make([]*big.Int, len(weights))
	remainders := make([]*big.Int, len(weights))
	left := new(big.Int).Set(magnitude)
	for i, w := range weights {
		numerator := new(big.Int).Mul(magnitude, integer(w))
		// DivMod is Euclidean: with a positive denominator it floors and
		// leaves 0 <= remainder < denominator.
		shares[i], remainders[i] = new(big.Int).DivMod(numerator, denominator, new(big.Int))
		left.Sub(left, shares[i])
	}

	order := make([]int, len(weights))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return remainders[b].Cmp(remainders[a]) // largest first; stable keeps group order on ties
	})
	for _, i := range order[:left.Int64()] {
		shares[i].Add(shares[i], big.NewInt(1))
	}

	for i, share := range shares {
		if total < 0 {
			share.Neg(share)
		}
		if !share.IsInt64() {
			return nil, fmt.Errorf("%w: group share %s", ErrOverflow, share)
		}
		parts[i] = share.Int64()
	}
	return parts, nil
}

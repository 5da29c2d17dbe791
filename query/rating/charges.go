package rating

import (
	"fmt"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/schemas"
)

// chargeModels is the one table of charge models: how each turns a
// period's units into an amount. A model missing here is an error
// (ErrUnknownChargeModel), never priced as another one.
var chargeModels = map[schemas.ChargeModel]func(schemas.ChargeProperties, decimal.Decimal) (decimal.Decimal, error){
	schemas.ChargeStandard:  standardAmount,
	schemas.ChargeGraduated: graduatedAmount,
	schemas.ChargeVolume:    volumeAmount,
	schemas.ChargePackage:   packageAmount,
}

// ChargeAmount returns what charge c costs for units, in major units of
// the plan's currency, exact and unrounded (Round rounds it, once).
//
// Negative units happen: a SUM meter nets refunds against usage. The
// standard model prices them as they are (units × amount, a negative
// amount, a credit). The graduated, volume and package models price them
// as zero units, because their tiers and packages describe quantities
// consumed, and a negative tier position has no meaning.
func ChargeAmount(c schemas.Charge, units decimal.Decimal) (decimal.Decimal, error) {
	amountOf, ok := chargeModels[c.ChargeModel]
	if !ok {
		return decimal.Decimal{}, fmt.Errorf("%w %q", ErrUnknownChargeModel, c.ChargeModel)
	}
	return amountOf(c.Properties, units)
}

// standardAmount is units × amount.
func standardAmount(p schemas.ChargeProperties, units decimal.Decimal) (decimal.Decimal, error) {
	if p.Amount == nil {
		return decimal.Decimal{}, fmt.Errorf("%w: standard charge without amount", ErrInvalidCharge)
	}
	return units.Mul(*p.Amount), nil
}

// graduatedAmount prices the units inside each tier at that tier's
// per-unit amount, and adds the flat amount of every tier the units reach
// into (units above its lower bound).
func graduatedAmount(p schemas.ChargeProperties, units decimal.Decimal) (decimal.Decimal, error) {
	tiers, err := tiersOf(p.GraduatedRanges)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("graduated_ranges: %w", err)
	}
	total := decimal.Zero
	for _, t := range tiers {
		if !units.GreaterThan(t.lower) {
			break
		}
		inTier := units
		if t.upper != nil && units.GreaterThan(*t.upper) {
			inTier = *t.upper
		}
		inTier = inTier.Sub(t.lower)
		total = total.Add(inTier.Mul(t.perUnit)).Add(t.flat)
	}
	return total, nil
}

// volumeAmount prices all units at the tier holding the total (lower <
// units <= upper), plus that tier's flat amount. Zero units hold no tier
// and cost nothing.
func volumeAmount(p schemas.ChargeProperties, units decimal.Decimal) (decimal.Decimal, error) {
	tiers, err := tiersOf(p.VolumeRanges)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("volume_ranges: %w", err)
	}
	if !units.IsPositive() {
		return decimal.Zero, nil
	}
	for _, t := range tiers {
		if t.upper == nil || units.LessThanOrEqual(*t.upper) {
			return units.Mul(t.perUnit).Add(t.flat), nil
		}
	}
	panic("unreachable: the last tier is unbounded") // tiersOf checks it
}

// packageAmount charges amount per started package of package_size units,
// after free_units: 10.5 billable units in packages of 10 are 2 packages.
// A missing free_units is 0 (Lago's default).
func packageAmount(p schemas.ChargeProperties, units decimal.Decimal) (decimal.Decimal, error) {
	switch {
	case p.Amount == nil:
		return decimal.Decimal{}, fmt.Errorf("%w: package charge without amount", ErrInvalidCharge)
	case p.PackageSize == nil || !p.PackageSize.IsPositive():
		return decimal.Decimal{}, fmt.Errorf("%w: package_size must be positive", ErrInvalidCharge)
	case p.FreeUnits != nil && p.FreeUnits.IsNegative():
		return decimal.Decimal{}, fmt.Errorf("%w: free_units must not be negative", ErrInvalidCharge)
	}
	billable := units
	if p.FreeUnits != nil {
		billable = billable.Sub(*p.FreeUnits)
	}
	if !billable.IsPositive() {
		return decimal.Zero, nil
	}
	// QuoRem is exact: Div would round the quotient to 16 digits, and
	// ceil of a rounded quotient can miss a package that was started.
	packages, rest := billable.QuoRem(*p.PackageSize, 0)
	if !rest.IsZero() {
		packages = packages.Add(decimal.NewFromInt(1))
	}
	return packages.Mul(*p.Amount), nil
}

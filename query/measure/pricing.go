package measure

import (
	"encoding/json"
	"errors"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/schemas"
)

// chargePrices is the one table of charge models as Measure's price
// shapes: each fills the shape its model maps to and leaves the others
// null. A model missing here is an error, never served as another.
var chargePrices = map[schemas.ChargeModel]func(p schemas.ChargeProperties, ip *itemPricing) error{
	// standard: amount per unit.
	schemas.ChargeStandard: func(p schemas.ChargeProperties, ip *itemPricing) error {
		if p.Amount == nil {
			return errors.New("standard charge without amount")
		}
		ip.FixedPrice = &fixedPrice{PricePerUnit: number(*p.Amount)}
		return nil
	},
	// graduated: each tier prices the units inside it.
	schemas.ChargeGraduated: func(p schemas.ChargeProperties, ip *itemPricing) error {
		if len(p.GraduatedRanges) == 0 {
			return errors.New("graduated charge without graduated_ranges")
		}
		ip.GradientPrice = make([]gradientTier, len(p.GraduatedRanges))
		for i, r := range p.GraduatedRanges {
			ip.GradientPrice[i] = gradientTier{Start: number(r.FromValue), End: optionalNumber(r.ToValue),
				FlatPrice: number(r.FlatAmount), PricePerUnit: number(r.PerUnitAmount)}
		}
		return nil
	},
	// volume: all units at the tier the total reaches.
	schemas.ChargeVolume: func(p schemas.ChargeProperties, ip *itemPricing) error {
		if len(p.VolumeRanges) == 0 {
			return errors.New("volume charge without volume_ranges")
		}
		ip.VolumePrice = make([]volumeTier, len(p.VolumeRanges))
		for i, r := range p.VolumeRanges {
			ip.VolumePrice[i] = volumeTier{TotalUnitsStart: number(r.FromValue), TotalUnitsEnd: optionalNumber(r.ToValue),
				FlatPrice: number(r.FlatAmount), PricePerUnit: number(r.PerUnitAmount)}
		}
		return nil
	},
	// package: amount per started package of package_size units, after
	// free_units, which Measure calls base_units.
	schemas.ChargePackage: func(p schemas.ChargeProperties, ip *itemPricing) error {
		if p.Amount == nil || p.PackageSize == nil {
			return errors.New("package charge without amount or package_size")
		}
		ip.StepPrice = &stepPrice{PricePerStep: number(*p.Amount), StepSize: number(*p.PackageSize)}
		if p.FreeUnits != nil {
			ip.BaseUnits = number(*p.FreeUnits)
		}
		return nil
	},
}

// priceCharge fills the price shape of c's model.
func priceCharge(c schemas.Charge, ip *itemPricing) error {
	fill, ok := chargePrices[c.ChargeModel]
	if !ok {
		return errors.New("unknown charge model " + string(c.ChargeModel))
	}
	return fill(c.Properties, ip)
}

func optionalNumber(d *decimal.Decimal) *json.Number {
	if d == nil {
		return nil
	}
	n := number(*d)
	return &n
}

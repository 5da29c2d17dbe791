package schemas

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/shopspring/decimal"
)

// chargeModelProperties lists the properties each charge model reads. Any
// other property given with a model is an error: volume_ranges sent with a
// graduated charge would otherwise be silently ignored.
var chargeModelProperties = map[ChargeModel][]string{
	ChargeStandard:  {"amount"},
	ChargeGraduated: {"graduated_ranges"},
	ChargeVolume:    {"volume_ranges"},
	ChargePackage:   {"amount", "package_size", "free_units"},
}

// Validate checks a plan built in Go; ParsePlan calls it after filling in
// defaults. Every problem is reported, each naming its JSON field path
// ("charges[1].properties.graduated_ranges[2].from_value"). Whether each
// charge's meter exists is for the caller to check.
func (p *Plan) Validate() error { return errors.Join(p.validate()...) }

func (p *Plan) validate() []error {
	var errs []error
	if p.Code == "" {
		errs = append(errs, fieldErr("code", "is required"))
	} else if !PlanCodePattern.MatchString(p.Code) {
		errs = append(errs, fieldErr("code", "%q must match %s", p.Code, PlanCodePattern))
	}
	if p.Name == "" {
		errs = append(errs, fieldErr("name", "is required"))
	}
	errs = appendErr(errs, checkText(p.Name, "name", MaxCatalogNameLen))
	errs = appendErr(errs, checkText(p.Description, "description", MaxPlanDescLen))
	if !slices.Contains(Intervals, p.Interval) {
		errs = append(errs, fieldErr("interval", "%q must be one of %v", p.Interval, Intervals))
	}
	if p.AmountCents < 0 {
		errs = append(errs, fieldErr("amount_cents", "must not be negative"))
	}
	if p.AmountCurrency == "" {
		errs = append(errs, fieldErr("amount_currency", "is required"))
	} else if !ValidCurrency(p.AmountCurrency) {
		errs = append(errs, currencyErr("amount_currency", p.AmountCurrency))
	}
	if p.MinimumCommitmentCents < 0 {
		errs = append(errs, fieldErr("minimum_commitment_cents", "must not be negative"))
	}
	errs = append(errs, checkMetadata(p.Metadata, "metadata")...)
	if len(p.Charges) > MaxPlanCharges {
		errs = append(errs, fieldErr("charges", "has %d charges, at most %d allowed", len(p.Charges), MaxPlanCharges))
	}
	firstWithID := map[string]int{}
	for i := range p.Charges {
		c := &p.Charges[i]
		path := indexed("charges", i)
		errs = append(errs, c.validate(path)...)
		if c.ID == "" {
			continue
		}
		if j, dup := firstWithID[c.ID]; dup {
			errs = append(errs, fieldErr(path+".id", "%q is already the id of charges[%d]", c.ID, j))
		} else {
			firstWithID[c.ID] = i
		}
	}
	return errs
}

func (c *Charge) validate(path string) []error {
	var errs []error
	if c.ID != "" && !ChargeIDPattern.MatchString(c.ID) {
		errs = append(errs, fieldErr(path+".id", "%q must match %s", c.ID, ChargeIDPattern))
	}
	if c.Meter == "" {
		errs = append(errs, fieldErr(path+".meter", "is required"))
	} else if !MeterKeyPattern.MatchString(c.Meter) {
		errs = append(errs, fieldErr(path+".meter", "%q must match %s", c.Meter, MeterKeyPattern))
	}
	errs = appendErr(errs, checkText(c.InvoiceDisplayName, path+".invoice_display_name", MaxCatalogNameLen))
	used, ok := chargeModelProperties[c.ChargeModel]
	if !ok {
		return append(errs, fieldErr(path+".charge_model", "%q must be one of %v", c.ChargeModel, ChargeModels))
	}
	props, pr := path+".properties", c.Properties
	for _, name := range pr.given() {
		if !slices.Contains(used, name) {
			errs = append(errs, fieldErr(props+"."+name, "is not used by the %s model, which reads %s",
				c.ChargeModel, strings.Join(used, ", ")))
		}
	}
	switch c.ChargeModel {
	case ChargeStandard:
		errs = appendErr(errs, checkNumber(pr.Amount, props+".amount", numberRule{required: true}))
	case ChargePackage:
		errs = appendErr(errs, checkNumber(pr.Amount, props+".amount", numberRule{required: true}))
		errs = appendErr(errs, checkNumber(pr.PackageSize, props+".package_size", numberRule{required: true, integer: true, min: 1}))
		errs = appendErr(errs, checkNumber(pr.FreeUnits, props+".free_units", numberRule{integer: true}))
	case ChargeGraduated:
		errs = append(errs, checkRanges(pr.GraduatedRanges, props+".graduated_ranges")...)
	case ChargeVolume:
		errs = append(errs, checkRanges(pr.VolumeRanges, props+".volume_ranges")...)
	default:
		errs = append(errs, fieldErr(path+".charge_model", "%s has no validation rules", c.ChargeModel))
	}
	return errs
}

// given lists the properties that are set; a range list given as [] is
// set, so that it is refused where the model does not use it.
func (p ChargeProperties) given() []string {
	var names []string
	for _, prop := range []struct {
		name string
		set  bool
	}{
		{"amount", p.Amount != nil},
		{"graduated_ranges", p.GraduatedRanges != nil},
		{"volume_ranges", p.VolumeRanges != nil},
		{"package_size", p.PackageSize != nil},
		{"free_units", p.FreeUnits != nil},
	} {
		if prop.set {
			names = append(names, prop.name)
		}
	}
	return names
}

// numberRule is what a decimal property must be; min is its least value.
type numberRule struct {
	required bool
	integer  bool
	min      int64
}

func checkNumber(d *decimal.Decimal, field string, rule numberRule) *FieldError {
	if d == nil {
		if rule.required {
			return fieldErr(field, "is required")
		}
		return nil
	}
	if problem := decimalProblem(*d); problem != "" {
		return fieldErr(field, "%s", problem)
	}
	if rule.integer && !d.IsInteger() {
		return fieldErr(field, "must be a whole number, found %s", d)
	}
	if d.LessThan(decimal.NewFromInt(rule.min)) {
		if rule.min == 0 {
			return fieldErr(field, "must not be negative, found %s", d)
		}
		return fieldErr(field, "must be at least %d, found %s", rule.min, d)
	}
	return nil
}

// checkRanges checks the tiers of a graduated or volume charge. A tier
// covers the units above its lower bound (the previous tier's to_value, 0
// for the first) up to its to_value. from_value must say the same: equal to
// the previous to_value, or in Lago's integer notation that value + 1 when
// it is an integer. In that notation a tier may be one unit wide
// (from_value = to_value = 11 after a tier ending at 10), so to_value must
// exceed the lower bound and not be below from_value.
func checkRanges(ranges []Range, field string) []error {
	if len(ranges) == 0 {
		return []error{fieldErr(field, "is required: 1 to %d tiers", MaxChargeTiers)}
	}
	if len(ranges) > MaxChargeTiers {
		return []error{fieldErr(field, "has %d tiers, at most %d allowed", len(ranges), MaxChargeTiers)}
	}
	var errs, boundErrs []error
	for i, r := range ranges {
		path := indexed(field, i)
		boundErrs = appendErr(boundErrs, checkNumber(&r.FromValue, path+".from_value", numberRule{}))
		boundErrs = appendErr(boundErrs, checkNumber(r.ToValue, path+".to_value", numberRule{}))
		errs = appendErr(errs, checkNumber(&r.PerUnitAmount, path+".per_unit_amount", numberRule{}))
		errs = appendErr(errs, checkNumber(&r.FlatAmount, path+".flat_amount", numberRule{}))
	}
	if boundErrs != nil {
		return append(boundErrs, errs...) // the bounds cannot all be compared
	}
	lower := &decimal.Decimal{} // nil after an unbounded tier
	for i, r := range ranges {
		path, last := indexed(field, i), i == len(ranges)-1
		switch {
		case i == 0 && !r.FromValue.IsZero():
			errs = append(errs, fieldErr(path+".from_value", "must be 0: the first tier starts at 0, found %s", r.FromValue))
		case i > 0 && lower != nil:
			errs = appendErr(errs, checkTierStart(r.FromValue, *lower, path+".from_value"))
		}
		switch {
		case last && r.ToValue != nil:
			errs = append(errs, fieldErr(path+".to_value", "must be null: the last tier has no upper bound"))
		case !last && r.ToValue == nil:
			errs = append(errs, fieldErr(path+".to_value", "is required: only the last tier is unbounded"))
		case r.ToValue != nil && lower != nil && !r.ToValue.GreaterThan(*lower):
			errs = append(errs, fieldErr(path+".to_value", "must be greater than %s, where the tier starts, found %s", lower, r.ToValue))
		case r.ToValue != nil && r.ToValue.LessThan(r.FromValue):
			errs = append(errs, fieldErr(path+".to_value", "must not be less than from_value %s, found %s", r.FromValue, r.ToValue))
		}
		lower = r.ToValue
	}
	return errs
}

// checkTierStart checks that a tier starting at from follows one ending at
// prevTo, without a gap or an overlap.
func checkTierStart(from, prevTo decimal.Decimal, field string) *FieldError {
	if from.Equal(prevTo) {
		return nil
	}
	want := prevTo.String()
	if prevTo.IsInteger() {
		next := prevTo.Add(decimal.NewFromInt(1))
		if from.Equal(next) {
			return nil // Lago's integer notation
		}
		want = fmt.Sprintf("%s (or %s in Lago's integer notation)", prevTo, next)
	}
	if from.LessThan(prevTo) {
		return fieldErr(field, "%s overlaps the previous tier, which ends at %s: start this tier at %s", from, prevTo, want)
	}
	return fieldErr(field, "%s leaves a gap after the previous tier, which ends at %s: start this tier at %s", from, prevTo, want)
}

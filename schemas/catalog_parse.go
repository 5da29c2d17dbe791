package schemas

import "github.com/shopspring/decimal"

// ParseCustomer decodes and validates a customer, as sent to the API in
// plain or Lago's wrapped form ({"customer": {...}}). Unknown fields are
// rejected; created_at and updated_at, assigned by the store, are ignored so
// that a customer read from the API can be sent back. Errors are
// *FieldError values, joined with errors.Join.
func ParseCustomer(raw []byte) (Customer, error) {
	obj, err := catalogBody(raw, "customer")
	if err != nil {
		return Customer{}, err
	}
	c := Customer{
		ExternalID: obj.str("external_id"),
		Name:       obj.str("name"),
		Email:      obj.str("email"),
		Currency:   obj.str("currency"),
		Timezone:   obj.str("timezone"),
		Metadata:   obj.metadata("metadata"),
	}
	obj.ignore("created_at", "updated_at")
	if err := mergeErrors(obj.unknown(), c.validate()); err != nil {
		return Customer{}, err
	}
	return c, nil
}

// ParseSubscription decodes and validates a subscription, in plain or
// wrapped form ({"subscription": {...}}). billing_time defaults to
// calendar. A missing subscription_at stays zero and a missing timezone
// empty: the caller defaults them (to now, and to the customer's zone).
// Whether the customer and plan exist is for the caller to check.
//
// status and created_at are ignored, so that a subscription read from the
// API can be sent back; terminated_at is refused unless null, since only
// terminating the subscription (DELETE) sets it.
func ParseSubscription(raw []byte) (Subscription, error) {
	obj, err := catalogBody(raw, "subscription")
	if err != nil {
		return Subscription{}, err
	}
	s := Subscription{
		ExternalID:         obj.str("external_id"),
		ExternalCustomerID: obj.str("external_customer_id"),
		PlanCode:           obj.str("plan_code"),
		Name:               obj.str("name"),
		EndingAt:           obj.timestamp("ending_at"),
		BillingTime:        BillingTime(obj.str("billing_time")),
		Timezone:           obj.str("timezone"),
	}
	if at := obj.timestamp("subscription_at"); at != nil {
		s.SubscriptionAt = *at
	}
	if s.BillingTime == "" {
		s.BillingTime = BillingCalendar
	}
	if obj.take("terminated_at") != nil {
		obj.fail("terminated_at", "is set by terminating the subscription (DELETE), not in its body")
	}
	obj.ignore("status", "created_at")
	if err := mergeErrors(obj.unknown(), s.validate()); err != nil {
		return Subscription{}, err
	}
	return s, nil
}

// ParsePlan decodes and validates a plan, in plain or wrapped form
// ({"plan": {...}}). revision, created_at and updated_at are assigned by the
// store and ignored. Defaults are filled in before Validate: amount_cents
// and minimum_commitment_cents 0, a package charge's free_units 0, a tier's
// per_unit_amount and flat_amount 0, charges []. Decimal properties are read
// from JSON numbers or numeric strings, exactly (never through float64), and
// normalised ("1.50" is kept as 1.5).
//
// Tiers are kept as written: in Lago's integer notation a tier's
// from_value is the previous to_value + 1, and pricing must take each
// tier's lower bound from the previous to_value, never from from_value.
func ParsePlan(raw []byte) (Plan, error) {
	obj, err := catalogBody(raw, "plan")
	if err != nil {
		return Plan{}, err
	}
	p := Plan{
		Code:                   obj.str("code"),
		Name:                   obj.str("name"),
		Description:            obj.str("description"),
		Interval:               Interval(obj.str("interval")),
		AmountCents:            obj.integer("amount_cents"),
		AmountCurrency:         obj.str("amount_currency"),
		PayInAdvance:           obj.boolean("pay_in_advance"),
		MinimumCommitmentCents: obj.integer("minimum_commitment_cents"),
		Metadata:               obj.metadata("metadata"),
		Charges:                []Charge{},
	}
	for i, rawCharge := range obj.array("charges") {
		path := indexed("charges", i)
		charge, err := catalogObject(rawCharge, path, path+".")
		if err != nil {
			obj.errs = append(obj.errs, err)
			p.Charges = append(p.Charges, Charge{}) // keeps the next charges' paths
			continue
		}
		p.Charges = append(p.Charges, parseCharge(charge))
		obj.errs = append(obj.errs, charge.unknown()...)
	}
	obj.ignore("revision", "created_at", "updated_at")
	if err := mergeErrors(obj.unknown(), p.validate()); err != nil {
		return Plan{}, err
	}
	return p, nil
}

// parseCharge reads a charge; its errors stay in obj.
func parseCharge(obj *jsonMembers) Charge {
	c := Charge{
		ID:                 obj.str("id"),
		Meter:              obj.str("meter"),
		ChargeModel:        ChargeModel(obj.str("charge_model")),
		InvoiceDisplayName: obj.str("invoice_display_name"),
	}
	props := obj.object("properties")
	if props == nil {
		return c
	}
	c.Properties = ChargeProperties{
		Amount:          props.number("amount"),
		GraduatedRanges: parseRanges(props, "graduated_ranges"),
		VolumeRanges:    parseRanges(props, "volume_ranges"),
		PackageSize:     props.number("package_size"),
		FreeUnits:       props.number("free_units"),
	}
	if c.ChargeModel == ChargePackage && c.Properties.FreeUnits == nil {
		c.Properties.FreeUnits = &decimal.Decimal{}
	}
	obj.errs = append(obj.errs, props.unknown()...)
	return c
}

// parseRanges reads a list of tiers: nil when absent, empty when [].
func parseRanges(props *jsonMembers, name string) []Range {
	elems := props.array(name)
	if elems == nil {
		return nil
	}
	ranges := make([]Range, 0, len(elems))
	for i, raw := range elems {
		path := indexed(props.path(name), i)
		tier, err := catalogObject(raw, path, path+".")
		if err != nil {
			props.errs = append(props.errs, err)
			ranges = append(ranges, Range{})
			continue
		}
		ranges = append(ranges, parseRange(tier))
		props.errs = append(props.errs, tier.unknown()...)
	}
	return ranges
}

func parseRange(tier *jsonMembers) Range {
	from := tier.members["from_value"]
	r := Range{
		FromValue:     orZero(tier.number("from_value")),
		ToValue:       tier.number("to_value"),
		PerUnitAmount: orZero(tier.number("per_unit_amount")),
		FlatAmount:    orZero(tier.number("flat_amount")),
	}
	if isAbsent(from) {
		// The type cannot tell a missing from_value from 0.
		tier.fail("from_value", "is required")
	}
	return r
}

func orZero(d *decimal.Decimal) decimal.Decimal {
	if d == nil {
		return decimal.Decimal{}
	}
	return *d
}

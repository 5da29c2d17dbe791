package rating

import (
	"fmt"
	"maps"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/schemas"
)

// ChargeUsage is a charge's usage in one billing period: the meter's
// value (Units) and the events counted, in total and per group when the
// meter groups by properties. Charge identifies the charge by its ID; the
// plan's charge with that ID is what is priced.
type ChargeUsage struct {
	Charge schemas.Charge
	Units  decimal.Decimal
	Events uint64
	Groups []GroupUsage
	// Additive says the meter's aggregation adds up across groups (SUM
	// and COUNT: schemas.Aggregation.IsAdditive), so the groups' units
	// add up to Units and the charge's amount is split over them. The
	// zero value splits nothing: the maximum, the latest value, the
	// average or the distinct count of a charge is not the sum of its
	// groups', and a split in proportion to them would be nonsense.
	Additive bool
	// GroupsOmitted says the meter has more groups than a response may
	// hold: the charge is priced on Units all the same, without lines per
	// group.
	GroupsOmitted bool
}

// GroupUsage is the usage of one group of a charge: the values of the
// meter's group-by properties, and its units and events.
type GroupUsage struct {
	Values map[string]string
	Units  decimal.Decimal
	Events uint64
}

// ChargeLine is one charge on an invoice.
type ChargeLine struct {
	Charge        schemas.Charge
	Units         decimal.Decimal
	Events        uint64
	Amount        Money
	Groups        []GroupLine
	GroupsOmitted bool // copied from ChargeUsage
	// GroupAmounts says the groups' Amounts are their shares of Amount
	// (the usage was Additive). When false, the groups carry units and
	// events only: every GroupLine.Amount is zero, which means "not
	// split", not "free".
	GroupAmounts bool
}

// GroupLine is one group of a charge line: its usage and, when the
// charge line has GroupAmounts, its share of the charge's amount.
type GroupLine struct {
	Values map[string]string
	Units  decimal.Decimal
	Events uint64
	Amount Money // zero unless the charge line has GroupAmounts
}

// Invoice is what a plan costs for one billing period. Total =
// ChargesTotal + FixedFee + TrueUp, in minor units, exactly.
type Invoice struct {
	Period            Period
	Currency          string
	Charges           []ChargeLine
	ChargesTotal      Money // the sum of the rounded charge amounts
	FixedFee          Money // the plan's amount_cents, prorated in a partial period
	MinimumCommitment Money // the plan's minimum_commitment_cents, prorated likewise; 0 when none
	TrueUp            Money // what brings ChargesTotal + FixedFee up to the minimum
	Total             Money

	// FullFixedFee and FullMinimumCommitment are the plan's amounts for a
	// whole period; FixedFeeProrated and MinimumCommitmentProrated say
	// that FixedFee and MinimumCommitment are a share of them.
	FullFixedFee, FullMinimumCommitment         Money
	FixedFeeProrated, MinimumCommitmentProrated bool
	Proration                                   Proration // copied from Rate's argument
}

// Rate prices usage on plan for period, in the plan's currency:
//
//  1. Every charge of the plan gets a line, in the plan's order; a charge
//     without usage has 0 units and 0 events. Usage for a charge id the
//     plan does not have is ErrUnknownCharge.
//  2. A charge's amount is computed exactly (ChargeAmount) and rounded
//     once (Round); ChargesTotal adds the rounded amounts.
//  3. The amount of a charge whose usage is Additive (SUM, COUNT) is split
//     over its groups in proportion to their units (allocate: largest
//     remainder, ties to the earlier group), so the group amounts add up
//     to the charge amount. When the groups' units add up to 0 every
//     group gets 0, and a non-zero charge amount stays on the charge line
//     only, allocated to no group. Any other charge's groups carry their
//     units and events without an amount (GroupAmounts is false): a MAX,
//     MIN, LATEST, AVG or UNIQUE_COUNT charge is not the sum of its
//     groups, so no split of it is meaningful (a LATEST charge of -5 with
//     groups at 10 and -5 would give the first a credit of 10.00 and the
//     second a debit of 5.00).
//  4. FixedFee is the plan's amount_cents and MinimumCommitment its
//     minimum_commitment_cents, each prorated by proration (see
//     Proration): amount × days / proration.FullDays, computed exactly and
//     rounded once to the minor unit, half away from zero. The minimum
//     and a fee paid in arrears are owed for proration.Days, a fee paid in
//     advance (plan.PayInAdvance) for proration.DaysToEnd, as in Lago. The
//     zero Proration prorates nothing. Usage charges are never prorated:
//     they are metered over the period as it is.
//  5. With a minimum commitment (minimum_commitment_cents > 0), TrueUp is
//     max(0, MinimumCommitment - (ChargesTotal + FixedFee)): as in Lago,
//     the minimum is what the period's spending, the subscription fee
//     included, comes to at least.
//
// Period is copied to the invoice; Rate does not read it.
func Rate(plan schemas.Plan, period Period, proration Proration, usage []ChargeUsage) (Invoice, error) {
	exponent, err := exponentOf(plan.AmountCurrency)
	if err != nil {
		return Invoice{}, fmt.Errorf("plan %q: %w", plan.Code, err)
	}
	if plan.AmountCents < 0 || plan.MinimumCommitmentCents < 0 {
		return Invoice{}, fmt.Errorf("%w %q: negative amount_cents or minimum_commitment_cents", ErrInvalidPlan, plan.Code)
	}
	usageByID, err := usageByCharge(plan, usage)
	if err != nil {
		return Invoice{}, err
	}

	inv := Invoice{Period: period, Currency: plan.AmountCurrency, Charges: make([]ChargeLine, 0, len(plan.Charges))}
	var chargesTotal int64
	for _, charge := range plan.Charges {
		line, err := rateCharge(charge, usageByID[charge.ID], plan.AmountCurrency, exponent)
		if err != nil {
			return Invoice{}, fmt.Errorf("plan %q charge %q: %w", plan.Code, charge.ID, err)
		}
		if chargesTotal, err = addMinor(chargesTotal, line.Amount.Minor); err != nil {
			return Invoice{}, fmt.Errorf("plan %q charges total: %w", plan.Code, err)
		}
		inv.Charges = append(inv.Charges, line)
	}

	feeDays := proration.FeeDays(plan.PayInAdvance)
	fee := proration.prorate(plan.AmountCents, feeDays)
	minimum := proration.prorate(plan.MinimumCommitmentCents, proration.Days)
	spent, err := addMinor(chargesTotal, fee)
	if err != nil {
		return Invoice{}, fmt.Errorf("plan %q total: %w", plan.Code, err)
	}
	var trueUp int64
	if minimum > 0 && spent < minimum {
		if trueUp, err = subMinor(minimum, spent); err != nil {
			return Invoice{}, fmt.Errorf("plan %q true-up: %w", plan.Code, err)
		}
	}
	total, err := addMinor(spent, trueUp)
	if err != nil {
		return Invoice{}, fmt.Errorf("plan %q total: %w", plan.Code, err)
	}

	inv.ChargesTotal = minorMoney(chargesTotal, exponent)
	inv.FixedFee = minorMoney(fee, exponent)
	inv.MinimumCommitment = minorMoney(minimum, exponent)
	inv.FullFixedFee = minorMoney(plan.AmountCents, exponent)
	inv.FullMinimumCommitment = minorMoney(plan.MinimumCommitmentCents, exponent)
	inv.FixedFeeProrated = proration.prorates(feeDays)
	inv.MinimumCommitmentProrated = proration.prorates(proration.Days)
	inv.Proration = proration
	inv.TrueUp = minorMoney(trueUp, exponent)
	inv.Total = minorMoney(total, exponent)
	return inv, nil
}

// usageByCharge indexes usage by charge id, refusing usage that matches no
// charge of the plan, or one charge twice.
func usageByCharge(plan schemas.Plan, usage []ChargeUsage) (map[string]ChargeUsage, error) {
	inPlan := make(map[string]bool, len(plan.Charges))
	for _, c := range plan.Charges {
		if inPlan[c.ID] {
			return nil, fmt.Errorf("%w %q: two charges with id %q", ErrInvalidPlan, plan.Code, c.ID)
		}
		inPlan[c.ID] = true
	}
	byID := make(map[string]ChargeUsage, len(usage))
	for _, u := range usage {
		if !inPlan[u.Charge.ID] {
			return nil, fmt.Errorf("%w: plan %q has no charge %q", ErrUnknownCharge, plan.Code, u.Charge.ID)
		}
		if _, dup := byID[u.Charge.ID]; dup {
			return nil, fmt.Errorf("plan %q: usage for charge %q given twice", plan.Code, u.Charge.ID)
		}
		byID[u.Charge.ID] = u
	}
	return byID, nil
}

// rateCharge prices one charge and, when its usage is additive, splits
// its amount over its groups.
func rateCharge(charge schemas.Charge, usage ChargeUsage, currency string, exponent int32) (ChargeLine, error) {
	exact, err := ChargeAmount(charge, usage.Units)
	if err != nil {
		return ChargeLine{}, err
	}
	_, minor, err := Round(exact, currency)
	if err != nil {
		return ChargeLine{}, err
	}
	parts := make([]int64, len(usage.Groups)) // zeros: not split
	if usage.Additive {
		weights := make([]decimal.Decimal, len(usage.Groups))
		for i, g := range usage.Groups {
			weights[i] = g.Units
		}
		if parts, err = allocate(minor, weights); err != nil {
			return ChargeLine{}, err
		}
	}
	line := ChargeLine{Charge: charge, Units: usage.Units, Events: usage.Events, Amount: minorMoney(minor, exponent),
		GroupsOmitted: usage.GroupsOmitted, GroupAmounts: usage.Additive}
	for i, g := range usage.Groups {
		line.Groups = append(line.Groups, GroupLine{
			Values: maps.Clone(g.Values),
			Units:  g.Units,
			Events: g.Events,
			Amount: minorMoney(parts[i], exponent),
		})
	}
	return line, nil
}

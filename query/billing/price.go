package billing

import (
	"context"
	"errors"
	"fmt"

	"github.com/tally-oss/tally/query/rating"
	"github.com/tally-oss/tally/query/usage"
	"github.com/tally-oss/tally/schemas"
)

// SubscriptionUsage prices the usage of a subscription over a period.
func (s *Service) SubscriptionUsage(ctx context.Context, orgID, subscriptionID string, req PeriodRequest) (Usage, error) {
	sub, err := s.Load(ctx, orgID, subscriptionID)
	if err != nil {
		return Usage{}, err
	}
	period, err := s.Period(sub, req)
	if err != nil {
		return Usage{}, err
	}
	return s.Price(ctx, orgID, sub, period)
}

// Price prices a loaded subscription's usage over period.
//
// When period is one of the subscription's billing periods, the plan's
// fixed fee and minimum commitment are prorated by the days of it the
// subscription is live in (rating.Schedule.Proration): a calendar
// subscription that starts on the 25th of a 31-day month owes 7/31 of
// them for its first period, as in Lago. Any other period (an explicit
// from/to range that is not exactly a billing period) is a custom range
// priced as one period, the fee and minimum whole: it has no whole
// period to be a share of.
//
// The charges' group lines together are at most the row limit given to
// New. Charges take them in plan order; a charge whose groups do not fit
// in what is left lists none and says so (GroupsOmitted), and is priced
// on its total all the same.
func (s *Service) Price(ctx context.Context, orgID string, sub Subscription, period rating.Period) (Usage, error) {
	var charges []rating.ChargeUsage
	groupRows := s.maxRows // left for the charges to come
	for _, c := range sub.Plan.Charges {
		cu := rating.ChargeUsage{Charge: c}
		if m, ok := sub.Meters[c.Meter]; ok {
			var err error
			if cu, err = s.chargeUsage(ctx, orgID, sub.Subscription.ExternalCustomerID, c, m, period, groupRows); err != nil {
				return Usage{}, err
			}
			groupRows -= len(cu.Groups)
		}
		charges = append(charges, cu)
	}
	proration, _ := sub.Schedule.Proration(period) // the zero Proration when period is a custom range
	inv, err := rating.Rate(sub.Plan, period, proration, charges)
	if err != nil {
		return Usage{}, fmt.Errorf("price subscription %q: %w", sub.Subscription.ExternalID, err)
	}
	return Usage{Subscription: sub, Invoice: inv}, nil
}

// chargeUsage reads the units of one charge: the meter's aggregation over
// the period for the customer, and per group when the meter has group
// keys, unless there are more groups than groupRows, the group lines the
// response has left. The total is its own query, not a sum of the
// groups: MAX, AVG, UNIQUE_COUNT and LATEST do not add up across groups.
func (s *Service) chargeUsage(ctx context.Context, orgID, customerID string, c schemas.Charge, m schemas.Meter, period rating.Period,
	groupRows int) (rating.ChargeUsage, error) {
	// Group lines share the charge's amount only when group units add up
	// to the total (SUM, COUNT).
	cu := rating.ChargeUsage{Charge: c, Additive: m.Aggregation.IsAdditive()}
	q := usage.ForMeter(orgID, m, period.From, period.To)
	q.CustomerIDs = []string{customerID}
	rows, err := s.usage.Read(ctx, q)
	if err != nil {
		return cu, fmt.Errorf("usage of meter %s: %w", m.Key, err)
	}
	for _, r := range rows { // at most one row: no windows, no groups
		cu.Units, cu.Events = r.Value, r.Events
	}
	if keys := m.GroupKeys(); len(keys) > 0 && cu.Events > 0 { // no readings, no groups
		q.GroupBy = keys
		var rows []usage.Row
		if groupRows > 0 { // else earlier charges took every line
			rows, err = s.usage.Read(ctx, q)
		}
		switch {
		case groupRows <= 0, errors.Is(err, usage.ErrTooManyRows), err == nil && len(rows) > groupRows:
			// More groups than the response may still hold: the charge is
			// priced on its total all the same, and says its groups are
			// left out.
			cu.GroupsOmitted = true
			return cu, nil
		case err != nil:
			return cu, fmt.Errorf("usage of meter %s by group: %w", m.Key, err)
		}
		for _, r := range rows {
			values := make(map[string]string, len(keys))
			for i, k := range keys {
				values[k] = r.GroupValues[i]
			}
			cu.Groups = append(cu.Groups, rating.GroupUsage{Values: values, Units: r.Value, Events: r.Events})
		}
	}
	return cu, nil
}

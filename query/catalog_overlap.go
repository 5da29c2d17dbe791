package query

import (
	"context"
	"fmt"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/schemas"
)

// Usage is read per customer and meter, so a meter's usage can belong to
// one subscription of a customer at a time: two subscriptions whose lives
// overlap and whose plans both charge a meter would each bill all of it.
// A subscription, or a plan update, that would make two share a meter
// that way is refused. Terminated subscriptions count as well: their last
// period may not be invoiced yet, and plans are not versioned per period.

// clashCheck finds subscriptions sharing a meter while their lives
// overlap. It reads each plan once.
type clashCheck struct {
	h     *catalogHandler
	ctx   context.Context
	org   string
	plans map[string]schemas.Plan // by code; a plan about to be stored replaces the stored one
}

func (h *catalogHandler) newClashCheck(ctx context.Context, org string, pending schemas.Plan) *clashCheck {
	return &clashCheck{h: h, ctx: ctx, org: org, plans: map[string]schemas.Plan{pending.Code: pending}}
}

// plan returns the plan of code; ok is false when it no longer exists.
func (c *clashCheck) plan(code string) (schemas.Plan, bool, error) {
	if p, ok := c.plans[code]; ok {
		return p, true, nil
	}
	p, err := c.h.store.GetPlan(c.ctx, c.org, code)
	switch {
	case isNotFound(err):
		return schemas.Plan{}, false, nil
	case err != nil:
		return schemas.Plan{}, false, err
	}
	c.plans[code] = p
	return p, true, nil
}

// against describes one of others (the customer's subscriptions) that
// overlaps sub in time and charges a meter sub's plan charges, or returns
// nil.
func (c *clashCheck) against(sub schemas.Subscription, others []schemas.Subscription) (*errorDetail, error) {
	plan, ok, err := c.plan(sub.PlanCode)
	if err != nil || !ok {
		return nil, err
	}
	charged := map[string]bool{}
	for _, ch := range plan.Charges {
		charged[ch.Meter] = true
	}
	for _, other := range others {
		if other.ExternalID == sub.ExternalID || !overlaps(sub, other) {
			continue
		}
		otherPlan, ok, err := c.plan(other.PlanCode)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // its plan is gone: it bills nothing (and a plan code in use cannot be deleted)
		}
		for _, ch := range otherPlan.Charges {
			if !charged[ch.Meter] {
				continue
			}
			if end, ends := other.EndAt(); ends && !end.After(c.h.now()) {
				// Ended: it cannot be ended again. Its periods are still
				// priced with its plan, and with this one's.
				return &errorDetail{Field: "plan_code", Message: fmt.Sprintf(
					"customer %s's subscription %s (plan %s) charged meter %s until %s, while this one would run; "+
						"a meter's usage is billed to one subscription at a time, and plans are not versioned per period: "+
						"give the new charge a plan of its own (a new code)",
					quoteKey(sub.ExternalCustomerID), quoteKey(other.ExternalID), quoteKey(other.PlanCode), quoteKey(ch.Meter),
					end.Format(timeLayout))}, nil
			}
			return &errorDetail{Field: "plan_code", Message: fmt.Sprintf(
				"customer %s's subscription %s (plan %s) charges meter %s while this one would run; "+
					"a meter's usage is billed to one subscription at a time: end %s first, or start this one after it ends",
				quoteKey(sub.ExternalCustomerID), quoteKey(other.ExternalID), quoteKey(other.PlanCode), quoteKey(ch.Meter),
				quoteKey(other.ExternalID))}, nil
		}
	}
	return nil, nil
}

// meterClash checks a subscription about to be created on plan.
func (h *catalogHandler) meterClash(ctx context.Context, org string, sub schemas.Subscription, plan schemas.Plan) (*errorDetail, error) {
	others, err := h.store.ListSubscriptions(ctx, org, catalogstore.SubscriptionFilter{CustomerID: sub.ExternalCustomerID})
	if err != nil {
		return nil, err
	}
	return h.newClashCheck(ctx, org, plan).against(sub, others)
}

// planClash checks a new version of a plan against every subscription
// on it, terminated ones included: a meter the plan starts to charge must
// not be charged to the same customer by another subscription meanwhile.
// The organization's subscriptions are read once.
func (h *catalogHandler) planClash(ctx context.Context, org string, prev, next schemas.Plan) (*errorDetail, error) {
	before := map[string]bool{}
	for _, c := range prev.Charges {
		before[c.Meter] = true
	}
	added := false
	for _, c := range next.Charges {
		added = added || !before[c.Meter]
	}
	if !added {
		return nil, nil
	}
	all, err := h.store.ListSubscriptions(ctx, org, catalogstore.SubscriptionFilter{})
	if err != nil {
		return nil, err
	}
	byCustomer := map[string][]schemas.Subscription{}
	for _, s := range all {
		byCustomer[s.ExternalCustomerID] = append(byCustomer[s.ExternalCustomerID], s)
	}
	check := h.newClashCheck(ctx, org, next)
	for _, sub := range all {
		if sub.PlanCode != next.Code {
			continue
		}
		clash, err := check.against(sub, byCustomer[sub.ExternalCustomerID])
		if err != nil || clash != nil {
			if clash != nil {
				clash.Field = "charges"
				clash.Message = "subscription " + quoteKey(sub.ExternalID) + " on this plan: " + clash.Message
			}
			return clash, err
		}
	}
	return nil, nil
}

// overlaps reports whether two subscriptions' lives, [subscription_at,
// end), share an instant. A subscription ended before it began (a pending
// one canceled) has no life.
func overlaps(a, b schemas.Subscription) bool {
	aEnd, aEnds := a.EndAt()
	bEnd, bEnds := b.EndAt()
	if (aEnds && !a.SubscriptionAt.Before(aEnd)) || (bEnds && !b.SubscriptionAt.Before(bEnd)) {
		return false
	}
	return (!bEnds || a.SubscriptionAt.Before(bEnd)) && (!aEnds || b.SubscriptionAt.Before(aEnd))
}

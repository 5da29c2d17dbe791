package query

import (
	"context"
	"fmt"
	"time"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/schemas"
)

// Usage is read per customer and meter, so a meter's usage can belong to
// one subscription of a customer at a time: two subscriptions whose lives
// overlap and whose plans both charge a meter would each bill all of it.
// A subscription that would share a meter that way is refused.

// meterClash describes another subscription of the customer that overlaps
// sub in time and charges one of plan's meters, or returns nil. Other
// subscriptions on plan's code are judged by plan (the version about to
// be stored).
func (h *catalogHandler) meterClash(ctx context.Context, org string, sub schemas.Subscription, plan schemas.Plan) (*errorDetail, error) {
	charged := map[string]bool{}
	for _, c := range plan.Charges {
		charged[c.Meter] = true
	}
	if len(charged) == 0 {
		return nil, nil
	}
	plans := map[string]schemas.Plan{plan.Code: plan}
	f := catalogstore.SubscriptionFilter{CustomerID: sub.ExternalCustomerID, Limit: 1000}
	for {
		page, err := h.store.ListSubscriptions(ctx, org, f)
		if err != nil {
			return nil, err
		}
		for _, other := range page {
			if other.ExternalID == sub.ExternalID || !overlaps(sub, other) {
				continue
			}
			otherPlan, ok := plans[other.PlanCode]
			if !ok {
				otherPlan, err = h.store.GetPlan(ctx, org, other.PlanCode)
				switch {
				case isNotFound(err):
					continue // its plan is gone: it bills nothing
				case err != nil:
					return nil, err
				}
				plans[other.PlanCode] = otherPlan
			}
			for _, c := range otherPlan.Charges {
				if charged[c.Meter] {
					return &errorDetail{Field: "plan_code", Message: fmt.Sprintf(
						"customer %s's subscription %s (plan %s) already charges meter %s while this one would run; "+
							"a meter's usage is billed to one subscription at a time: terminate %s first, or start this one after it ends",
						quoteKey(sub.ExternalCustomerID), quoteKey(other.ExternalID), quoteKey(other.PlanCode), quoteKey(c.Meter),
						quoteKey(other.ExternalID))}, nil
				}
			}
		}
		if len(page) < f.Limit {
			return nil, nil
		}
		f.After = page[len(page)-1].ExternalID
	}
}

// overlaps reports whether two subscriptions' lives, [subscription_at,
// end), share an instant.
func overlaps(a, b schemas.Subscription) bool {
	aEnd, aEnds := a.EndAt()
	bEnd, bEnds := b.EndAt()
	startsBeforeEnd := func(start time.Time, end time.Time, ends bool) bool { return !ends || start.Before(end) }
	return startsBeforeEnd(a.SubscriptionAt, bEnd, bEnds) && startsBeforeEnd(b.SubscriptionAt, aEnd, aEnds)
}

// planClash checks a new version of a plan against the live subscriptions
// that bill it: a meter the plan starts to charge must not be charged to
// one of their customers by another live subscription meanwhile.
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
	subs, err := h.store.ListSubscriptions(ctx, org, catalogstore.SubscriptionFilter{PlanCode: next.Code})
	if err != nil {
		return nil, err
	}
	now := h.now()
	for _, sub := range subs {
		if sub.StatusAt(now) == schemas.StatusTerminated {
			continue
		}
		clash, err := h.meterClash(ctx, org, sub, next)
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

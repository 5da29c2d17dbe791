package query

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

// updatePlan serves PUT /api/v1/plans/{code}: the body replaces the
// plan's definition. Its code must be the path's, or absent. Charge ids
// are kept: a charge that names its id keeps it, one without takes the id
// of the previous charge on the same meter when that is unambiguous (see
// catalogstore), so usage and invoices keep referring to the same charge.
//
// While subscriptions use the plan, ended ones included, its currency and
// interval cannot change: the subscriptions' customers are billed in the
// plan's currency, and their periods, the last of an ended one too, would
// change length.
func (h *catalogHandler) updatePlan(w http.ResponseWriter, r *http.Request) {
	ctx, org, code := r.Context(), httpapi.OrgID(r.Context()), r.PathValue("code")
	prev, err := h.store.GetPlan(ctx, org, code)
	switch {
	case isNotFound(err):
		writeCatalogNotFound(w, "plan", code, PlansRoute)
		return
	case err != nil:
		h.storeFailed(w, r, "get plan", err)
		return
	}
	body, ok := readCatalogBody(w, r, "plan")
	if !ok {
		return
	}
	if members, object, isObject := bodyObject(body, "plan"); isObject {
		if _, given := members["code"]; !given {
			body = withMember(object, "code", code)
		}
	}
	plan, err := schemas.ParsePlan(body)
	if err != nil {
		writeInvalid(w, "the plan", fieldErrors(err))
		return
	}
	if plan.Code != code {
		writeInvalid(w, "the plan", []*errorDetail{{Field: "code", Message: fmt.Sprintf(
			"%s must be %s, the code in the path, or absent: a plan's code cannot change (POST %s creates a plan under a new code)",
			quoteKey(plan.Code), quoteKey(code), PlansRoute)}})
		return
	}
	details := chargeIDsKnown(prev, plan)
	meterDetails, err := h.checkMeters(r, org, plan)
	if err != nil {
		h.storeFailed(w, r, "get meter", err)
		return
	}
	details = append(details, meterDetails...)
	if plan.AmountCurrency != prev.AmountCurrency || plan.Interval != prev.Interval {
		subs, err := h.store.ListSubscriptions(ctx, org, catalogstore.SubscriptionFilter{PlanCode: code})
		if err != nil {
			h.storeFailed(w, r, "list the plan's subscriptions", err)
			return
		}
		ids := make([]string, len(subs))
		for i, s := range subs {
			ids[i] = s.ExternalID
		}
		details = append(details, lockedTerms(prev, plan, ids)...)
	}
	if len(details) == 0 {
		clash, err := h.planClash(ctx, org, prev, plan)
		if err != nil {
			h.storeFailed(w, r, "list the plan's subscriptions", err)
			return
		}
		if clash != nil {
			details = append(details, clash)
		}
	}
	if len(details) > 0 {
		writeInvalid(w, "the plan", details)
		return
	}
	updated, err := h.store.UpdatePlan(ctx, org, plan)
	switch {
	case isNotFound(err): // deleted meanwhile by another request
		writeCatalogNotFound(w, "plan", code, PlansRoute)
	case err != nil:
		h.storeFailed(w, r, "update plan", err)
	default:
		httpapi.WriteJSON(w, http.StatusOK, updated)
	}
}

// chargeIDsKnown refuses a charge id the plan does not have: an id names
// an existing charge to keep; a new charge is sent without one and gets
// a new id.
func chargeIDsKnown(prev, next schemas.Plan) []*errorDetail {
	var details []*errorDetail
	for i, c := range next.Charges {
		if c.ID == "" || slices.ContainsFunc(prev.Charges, func(p schemas.Charge) bool { return p.ID == c.ID }) {
			continue
		}
		details = append(details, &errorDetail{Field: fmt.Sprintf("charges[%d].id", i), Message: fmt.Sprintf(
			"plan %s has no charge %s; omit id to add a charge (GET %s/%s shows the charges' ids)",
			quoteKey(prev.Code), quoteKey(c.ID), PlansRoute, prev.Code)})
	}
	return details
}

// lockedTerms reports a change of currency or interval while
// subscriptions (live holds their ids) use the plan.
func lockedTerms(prev, next schemas.Plan, live []string) []*errorDetail {
	if len(live) == 0 {
		return nil
	}
	named := live[:min(len(live), maxNamedSubscriptions)]
	var details []*errorDetail
	if next.AmountCurrency != prev.AmountCurrency {
		details = append(details, &errorDetail{Field: "amount_currency", Message: fmt.Sprintf(
			"cannot change from %s while %d subscriptions, ended ones included, use the plan (%v); create a new plan",
			prev.AmountCurrency, len(live), named)})
	}
	if next.Interval != prev.Interval {
		details = append(details, &errorDetail{Field: "interval", Message: fmt.Sprintf(
			"cannot change from %s while %d subscriptions, ended ones included, use the plan (%v); create a new plan",
			prev.Interval, len(live), named)})
	}
	return details
}

package query

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/schemas"
)

// maxNamedSubscriptions bounds the subscriptions an error names.
const maxNamedSubscriptions = 10

// createPlan serves POST /api/v1/plans. Besides the plan's own rules
// (schemas.ParsePlan), every charge's meter must exist and the code must
// not be in use.
func (h *catalogHandler) createPlan(w http.ResponseWriter, r *http.Request) {
	body, ok := readCatalogBody(w, r, "plan")
	if !ok {
		return
	}
	plan, err := schemas.ParsePlan(body)
	if err != nil {
		writeInvalid(w, "the plan", fieldErrors(err))
		return
	}
	ctx, org := r.Context(), httpapi.OrgID(r.Context())
	details, err := h.checkMeters(r, org, plan)
	if err != nil {
		h.storeFailed(w, r, "get meter", err)
		return
	}
	switch _, err := h.store.GetPlan(ctx, org, plan.Code); {
	case err == nil:
		details = append([]*errorDetail{planCodeInUse(plan.Code)}, details...)
	case !isNotFound(err):
		h.storeFailed(w, r, "get plan", err)
		return
	}
	if len(details) > 0 {
		writeInvalid(w, "the plan", details)
		return
	}
	created, err := h.store.CreatePlan(ctx, org, plan)
	switch {
	case errors.Is(err, catalogstore.ErrExists): // created meanwhile by another request
		writeInvalid(w, "the plan", []*errorDetail{planCodeInUse(plan.Code)})
		return
	case err != nil:
		h.storeFailed(w, r, "create plan", err)
		return
	}
	w.Header().Set("Location", PlansRoute+"/"+url.PathEscape(created.Code))
	httpapi.WriteJSON(w, http.StatusCreated, created)
}

func planCodeInUse(code string) *errorDetail {
	return &errorDetail{Field: "code", Message: fmt.Sprintf(
		"plan %s already exists; PUT %s/%s replaces its definition", quoteKey(code), PlansRoute, code)}
}

// checkMeters reports every charge on a meter the organization does not
// have.
func (h *catalogHandler) checkMeters(r *http.Request, org string, plan schemas.Plan) ([]*errorDetail, error) {
	var details []*errorDetail
	exists := map[string]bool{}
	for i, c := range plan.Charges {
		found, known := exists[c.Meter]
		if !known {
			_, err := h.meters.Get(r.Context(), org, c.Meter)
			switch {
			case errors.Is(err, meterstore.ErrNotFound):
			case err != nil:
				return nil, err
			default:
				found = true
			}
			exists[c.Meter] = found
		}
		if !found {
			details = append(details, &errorDetail{Field: fmt.Sprintf("charges[%d].meter", i), Message: fmt.Sprintf(
				"meter %s not found; GET %s lists your meters", quoteKey(c.Meter), MetersRoute)})
		}
	}
	return details, nil
}

// planBatch is how many plans one store read returns: a plan is at most
// about 1 MiB (maxCatalogBytes), so a read holds at most about 5 MiB,
// about what one page (maxPageBytes) may send.
const planBatch = 5

// listPlans serves GET /api/v1/plans, sorted by code, paginated; a page
// holds at most maxPageBytes of plans (see fillPage), fewer than ?limit=
// when the plans are large.
func (h *catalogHandler) listPlans(w http.ResponseWriter, r *http.Request) {
	params, details := queryParams(r, pageParams...)
	p, pageDetails := parsePage(params)
	if details = append(details, pageDetails...); len(details) > 0 {
		writeInvalid(w, "the query", details)
		return
	}
	ctx, org := r.Context(), httpapi.OrgID(r.Context())
	body, err := fillPage(p, planBatch, func(after string, n int) ([]schemas.Plan, error) {
		return h.store.ListPlans(ctx, org, after, n)
	}, func(p schemas.Plan) string { return p.Code }, nil)
	if err != nil {
		h.storeFailed(w, r, "list plans", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, body)
}

func (h *catalogHandler) getPlan(w http.ResponseWriter, r *http.Request) {
	code := r.PathValue("code")
	plan, err := h.store.GetPlan(r.Context(), httpapi.OrgID(r.Context()), code)
	switch {
	case isNotFound(err):
		writeCatalogNotFound(w, "plan", code, PlansRoute)
	case err != nil:
		h.storeFailed(w, r, "get plan", err)
	default:
		httpapi.WriteJSON(w, http.StatusOK, plan)
	}
}

// deletePlan serves DELETE /api/v1/plans/{code}. A plan that any
// subscription uses, ended ones included, cannot be deleted (409 naming
// them): their periods could no longer be priced, and a plan created
// again under the code would change what they bill.
func (h *catalogHandler) deletePlan(w http.ResponseWriter, r *http.Request) {
	ctx, org, code := r.Context(), httpapi.OrgID(r.Context()), r.PathValue("code")
	// Every subscription on the plan counts, ended ones too: their periods
	// (the last one may not be invoiced yet) are priced with the plan, and
	// a plan created again under the code would change what they bill.
	subs, err := h.store.ListSubscriptions(ctx, org, catalogstore.SubscriptionFilter{PlanCode: code})
	if err != nil {
		h.storeFailed(w, r, "list the plan's subscriptions", err)
		return
	}
	if len(subs) > 0 {
		ids := make([]string, 0, maxNamedSubscriptions)
		for _, s := range subs[:min(len(subs), maxNamedSubscriptions)] {
			ids = append(ids, s.ExternalID)
		}
		more := ""
		if len(subs) > len(ids) {
			more = fmt.Sprintf(" and %d more", len(subs)-len(ids))
		}
		httpapi.WriteErrorDetails(w, http.StatusConflict, httpapi.CodeConflict, fmt.Sprintf(
			"plan %s is the plan of %d subscriptions (%s%s), ended ones included: their billing periods are priced with it, "+
				"so it stays; a plan no subscription ever used can be deleted",
			quoteKey(code), len(subs), strings.Join(ids, ", "), more),
			planInUse{Subscriptions: ids, Count: len(subs)})
		return
	}
	err = h.store.DeletePlan(ctx, org, code)
	switch {
	case isNotFound(err):
		writeCatalogNotFound(w, "plan", code, PlansRoute)
	case err != nil:
		h.storeFailed(w, r, "delete plan", err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// planInUse are the details of a 409 for a plan that subscriptions bill:
// at most maxNamedSubscriptions external ids, and how many there are.
type planInUse struct {
	Subscriptions []string `json:"subscriptions"`
	Count         int      `json:"count"`
}

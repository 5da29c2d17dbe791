package query

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

// createSubscription serves POST /api/v1/subscriptions. The plan and the
// customer must exist, and the customer's currency, when it has one, must
// be the plan's; a customer without one takes the plan's currency, as in
// Lago, so that all of its subscriptions bill in one currency.
// subscription_at defaults to now, timezone to the customer's, then UTC.
func (h *catalogHandler) createSubscription(w http.ResponseWriter, r *http.Request) {
	body, ok := readCatalogBody(w, r, "subscription")
	if !ok {
		return
	}
	sub, err := schemas.ParseSubscription(body)
	if err != nil {
		writeInvalid(w, "the subscription", fieldErrors(err))
		return
	}
	ctx, org, now := r.Context(), httpapi.OrgID(r.Context()), h.now()
	if sub.SubscriptionAt.IsZero() {
		sub.SubscriptionAt = now.UTC()
	}
	if sub.BillingTime == "" {
		sub.BillingTime = schemas.BillingCalendar
	}
	var details []*errorDetail
	switch _, err := h.store.GetSubscription(ctx, org, sub.ExternalID); {
	case err == nil:
		details = append(details, subscriptionIDInUse(sub.ExternalID))
	case !isNotFound(err):
		h.storeFailed(w, r, "get subscription", err)
		return
	}
	customer, err := h.store.GetCustomer(ctx, org, sub.ExternalCustomerID)
	customerFound := err == nil
	switch {
	case isNotFound(err):
		details = append(details, &errorDetail{Field: "external_customer_id", Message: fmt.Sprintf(
			"customer %s not found; POST %s creates it, GET %s lists your customers",
			quoteKey(sub.ExternalCustomerID), CustomersRoute, CustomersRoute)})
	case err != nil:
		h.storeFailed(w, r, "get customer", err)
		return
	}
	plan, err := h.store.GetPlan(ctx, org, sub.PlanCode)
	switch {
	case isNotFound(err):
		details = append(details, &errorDetail{Field: "plan_code", Message: fmt.Sprintf(
			"plan %s not found; GET %s lists your plans", quoteKey(sub.PlanCode), PlansRoute)})
	case err != nil:
		h.storeFailed(w, r, "get plan", err)
		return
	case customerFound && customer.Currency != "" && customer.Currency != plan.AmountCurrency:
		details = append(details, &errorDetail{Field: "plan_code", Message: fmt.Sprintf(
			"plan %s is billed in %s but customer %s in %s; choose a plan in %s",
			quoteKey(plan.Code), plan.AmountCurrency, quoteKey(customer.ExternalID), customer.Currency, customer.Currency)})
	}
	if sub.EndingAt != nil && !sub.EndingAt.After(sub.SubscriptionAt) {
		details = append(details, &errorDetail{Field: "ending_at", Message: fmt.Sprintf(
			"%s is not after subscription_at %s", sub.EndingAt.Format(timeLayout), sub.SubscriptionAt.Format(timeLayout))})
	}
	if len(details) == 0 {
		clash, err := h.meterClash(ctx, org, sub, plan)
		if err != nil {
			h.storeFailed(w, r, "list the customer's subscriptions", err)
			return
		}
		if clash != nil {
			details = append(details, clash)
		}
	}
	if len(details) > 0 {
		writeInvalid(w, "the subscription", details)
		return
	}
	if sub.Timezone == "" {
		sub.Timezone = customer.Timezone
	}
	if sub.Timezone == "" {
		sub.Timezone = "UTC"
	}
	created, err := h.store.CreateSubscription(ctx, org, sub)
	switch {
	case errors.Is(err, catalogstore.ErrExists): // created meanwhile by another request
		writeInvalid(w, "the subscription", []*errorDetail{subscriptionIDInUse(sub.ExternalID)})
		return
	case err != nil:
		h.storeFailed(w, r, "create subscription", err)
		return
	}
	if customer.Currency == "" {
		customer.Currency = plan.AmountCurrency
		if _, _, err := h.store.PutCustomer(ctx, org, customer); err != nil {
			// The subscription stands and bills in the plan's currency; the
			// next subscription of the customer sets it again.
			h.logger.Warn("set the currency of a subscribed customer", "customer", customer.ExternalID, "err", err)
		}
	}
	created.Status = created.StatusAt(now)
	w.Header().Set("Location", SubscriptionsRoute+"/"+url.PathEscape(created.ExternalID))
	httpapi.WriteJSON(w, http.StatusCreated, created)
}

// timeLayout is how times are written in messages.
const timeLayout = "2006-01-02T15:04:05.999999999Z07:00"

func subscriptionIDInUse(id string) *errorDetail {
	return &errorDetail{Field: "external_id", Message: fmt.Sprintf(
		"subscription %s already exists (a terminated subscription keeps its id); GET %s/%s shows it",
		quoteKey(id), SubscriptionsRoute, id)}
}

// subscriptionStatuses are the values of ?status=.
var subscriptionStatuses = []schemas.SubscriptionStatus{schemas.StatusPending, schemas.StatusActive, schemas.StatusTerminated}

// subscriptionBatch is how many subscriptions one store read returns at
// most: a subscription is a few hundred bytes.
const subscriptionBatch = maxPageSize + 1

// listSubscriptions serves GET /api/v1/subscriptions, filtered by
// ?external_customer_id=, ?plan_code= and ?status=, sorted by
// external_id, paginated; a page holds at most maxPageBytes of
// subscriptions (see fillPage). Status is derived at now, so its filter
// runs here, on the store's pages, until the page is full.
func (h *catalogHandler) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	params, details := queryParams(r, "external_customer_id", "plan_code", "status", "limit", "cursor")
	p, pageDetails := parsePage(params)
	details = append(details, pageDetails...)
	status, filterStatus := schemas.SubscriptionStatus(params["status"]), false
	if _, given := params["status"]; given {
		filterStatus = true
		if !slices.Contains(subscriptionStatuses, status) {
			details = append(details, &errorDetail{Field: "status", Message: fmt.Sprintf("%q must be one of %v", status, subscriptionStatuses)})
		}
	}
	for _, name := range []string{"external_customer_id", "plan_code"} {
		if v, given := params[name]; given && v == "" {
			// An empty filter would list every subscription.
			details = append(details, &errorDetail{Field: name, Message: "must not be empty; leave it out to list every subscription"})
		}
	}
	if len(details) > 0 {
		writeInvalid(w, "the query", details)
		return
	}
	ctx, org, now := r.Context(), httpapi.OrgID(r.Context()), h.now()
	f := catalogstore.SubscriptionFilter{CustomerID: params["external_customer_id"], PlanCode: params["plan_code"]}
	var keep func(schemas.Subscription) bool
	if filterStatus {
		keep = func(s schemas.Subscription) bool { return s.Status == status }
	}
	body, err := fillPage(p, subscriptionBatch, func(after string, n int) ([]schemas.Subscription, error) {
		f.After, f.Limit = after, n
		subs, err := h.store.ListSubscriptions(ctx, org, f)
		for i := range subs {
			subs[i].Status = subs[i].StatusAt(now)
		}
		return subs, err
	}, func(s schemas.Subscription) string { return s.ExternalID }, keep)
	if err != nil {
		h.storeFailed(w, r, "list subscriptions", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, body)
}

func (h *catalogHandler) getSubscription(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("external_id")
	sub, err := h.store.GetSubscription(r.Context(), httpapi.OrgID(r.Context()), id)
	switch {
	case isNotFound(err):
		writeCatalogNotFound(w, "subscription", id, SubscriptionsRoute)
	case err != nil:
		h.storeFailed(w, r, "get subscription", err)
	default:
		sub.Status = sub.StatusAt(h.now())
		httpapi.WriteJSON(w, http.StatusOK, sub)
	}
}

// terminateSubscription serves DELETE /api/v1/subscriptions/{external_id}:
// the subscription ends now (terminated_at) and is returned. It stays
// readable, and its usage up to terminated_at stays billable. Terminating
// it again returns it unchanged, with the first terminated_at.
func (h *catalogHandler) terminateSubscription(w http.ResponseWriter, r *http.Request) {
	id, now := r.PathValue("external_id"), h.now()
	sub, err := h.store.TerminateSubscription(r.Context(), httpapi.OrgID(r.Context()), id, now)
	switch {
	case isNotFound(err):
		writeCatalogNotFound(w, "subscription", id, SubscriptionsRoute)
	case err != nil:
		h.storeFailed(w, r, "terminate subscription", err)
	default:
		sub.Status = sub.StatusAt(now)
		httpapi.WriteJSON(w, http.StatusOK, sub)
	}
}

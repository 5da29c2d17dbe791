package query

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

// putCustomer serves POST /api/v1/customers: create the customer, or
// update the one with its external_id (201 or 200). As in Lago, an update
// changes the members the body has and keeps the others: posting
// {"external_id": "c1", "email": "..."} does not clear c1's currency. A
// member given as null or "" clears it.
func (h *catalogHandler) putCustomer(w http.ResponseWriter, r *http.Request) {
	body, ok := readCatalogBody(w, r, "customer")
	if !ok {
		return
	}
	c, err := schemas.ParseCustomer(body)
	if err != nil {
		writeInvalid(w, "the customer", fieldErrors(err))
		return
	}
	ctx, org := r.Context(), httpapi.OrgID(r.Context())
	prev, err := h.store.GetCustomer(ctx, org, c.ExternalID)
	switch {
	case isNotFound(err):
	case err != nil:
		h.storeFailed(w, r, "get customer", err)
		return
	default:
		members, _, _ := bodyObject(body, "customer")
		c = mergeCustomer(prev, c, members)
		if c.Currency != prev.Currency {
			details, err := h.currencyInUse(r, org, c)
			if err != nil {
				h.storeFailed(w, r, "check the customer's subscriptions", err)
				return
			}
			if len(details) > 0 {
				writeInvalid(w, "the customer", details)
				return
			}
		}
	}
	saved, created, err := h.store.PutCustomer(ctx, org, c)
	if err != nil {
		h.storeFailed(w, r, "store customer", err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", CustomersRoute+"/"+url.PathEscape(saved.ExternalID))
	}
	httpapi.WriteJSON(w, status, saved)
}

// mergeCustomer applies an update to prev: the fields whose members the
// body has (members, nil when unknown) come from next, the rest from prev.
func mergeCustomer(prev, next schemas.Customer, members map[string]json.RawMessage) schemas.Customer {
	out := prev
	given := func(name string) bool { _, ok := members[name]; return ok || members == nil }
	if given("name") {
		out.Name = next.Name
	}
	if given("email") {
		out.Email = next.Email
	}
	if given("currency") {
		out.Currency = next.Currency
	}
	if given("timezone") {
		out.Timezone = next.Timezone
	}
	if given("metadata") {
		out.Metadata = next.Metadata
	}
	return out
}

// currencyInUse refuses to change the currency of a customer with pending
// or active subscriptions on plans in another currency: a customer is
// billed in one currency, as in Lago.
func (h *catalogHandler) currencyInUse(r *http.Request, org string, c schemas.Customer) ([]*errorDetail, error) {
	subs, err := h.store.ListSubscriptions(r.Context(), org, catalogstore.SubscriptionFilter{CustomerID: c.ExternalID})
	if err != nil {
		return nil, err
	}
	now := h.now()
	for _, s := range subs {
		if s.StatusAt(now) == schemas.StatusTerminated {
			continue
		}
		plan, err := h.store.GetPlan(r.Context(), org, s.PlanCode)
		switch {
		case isNotFound(err):
			continue
		case err != nil:
			return nil, err
		}
		if plan.AmountCurrency != c.Currency {
			return []*errorDetail{{Field: "currency", Message: fmt.Sprintf(
				"customer %s has subscription %s on plan %s, billed in %s; terminate it before changing the currency to %q",
				quoteKey(c.ExternalID), quoteKey(s.ExternalID), quoteKey(plan.Code), plan.AmountCurrency, c.Currency)}}, nil
		}
	}
	return nil, nil
}

// customerBatch is how many customers one store read returns: a customer
// is at most about 220 KB (50 metadata values of 1 KiB, escaped), so a
// read holds at most about 45 MB.
const customerBatch = 200

// listCustomers serves GET /api/v1/customers, sorted by external_id,
// paginated; a page holds at most maxPageBytes of customers (see
// fillPage), fewer than ?limit= when the customers are large.
func (h *catalogHandler) listCustomers(w http.ResponseWriter, r *http.Request) {
	params, details := queryParams(r, pageParams...)
	p, pageDetails := parsePage(params)
	if details = append(details, pageDetails...); len(details) > 0 {
		writeInvalid(w, "the query", details)
		return
	}
	ctx, org := r.Context(), httpapi.OrgID(r.Context())
	body, err := fillPage(p, customerBatch, func(after string, n int) ([]schemas.Customer, error) {
		return h.store.ListCustomers(ctx, org, after, n)
	}, func(c schemas.Customer) string { return c.ExternalID }, nil)
	if err != nil {
		h.storeFailed(w, r, "list customers", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, body)
}

func (h *catalogHandler) getCustomer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("external_id")
	c, err := h.store.GetCustomer(r.Context(), httpapi.OrgID(r.Context()), id)
	switch {
	case isNotFound(err):
		writeCatalogNotFound(w, "customer", id, CustomersRoute)
	case err != nil:
		h.storeFailed(w, r, "get customer", err)
	default:
		httpapi.WriteJSON(w, http.StatusOK, c)
	}
}

// deleteCustomer serves DELETE /api/v1/customers/{external_id}. As in
// Lago, the customer's pending and active subscriptions are terminated
// (now) first, so nothing keeps billing a customer that is gone; its
// events and usage stay.
func (h *catalogHandler) deleteCustomer(w http.ResponseWriter, r *http.Request) {
	ctx, org, id := r.Context(), httpapi.OrgID(r.Context()), r.PathValue("external_id")
	if _, err := h.store.GetCustomer(ctx, org, id); err != nil {
		if isNotFound(err) {
			writeCatalogNotFound(w, "customer", id, CustomersRoute)
		} else {
			h.storeFailed(w, r, "get customer", err)
		}
		return
	}
	subs, err := h.store.ListSubscriptions(ctx, org, catalogstore.SubscriptionFilter{CustomerID: id})
	if err != nil {
		h.storeFailed(w, r, "list the customer's subscriptions", err)
		return
	}
	now := h.now()
	for _, s := range subs {
		if s.StatusAt(now) == schemas.StatusTerminated {
			continue
		}
		if _, err := h.store.TerminateSubscription(ctx, org, s.ExternalID, now); err != nil && !isNotFound(err) {
			h.storeFailed(w, r, "terminate subscription "+s.ExternalID, err)
			return
		}
	}
	err = h.store.DeleteCustomer(ctx, org, id)
	switch {
	case isNotFound(err): // deleted meanwhile by another request
		writeCatalogNotFound(w, "customer", id, CustomersRoute)
	case err != nil:
		h.storeFailed(w, r, "delete customer", err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

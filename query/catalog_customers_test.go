package query

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

func TestCustomersCRUD(t *testing.T) {
	c := newCatalogEnv(t)
	code, body, header := c.do("POST", CustomersRoute, keyAcme, []byte(`{"external_id": "cust 1", "name": "Acme Corp",
		"email": "billing@acme.test", "currency": "EUR", "timezone": "Europe/Paris", "metadata": {"tier": "gold"}}`))
	if code != http.StatusCreated || header.Get("Location") != "/api/v1/customers/cust%201" {
		t.Fatalf("create: %d %s, Location %q", code, body, header.Get("Location"))
	}
	var created schemas.Customer
	c.mustCall("GET", CustomersRoute+"/cust%201", keyAcme, "", http.StatusOK, &created)
	if created.Name != "Acme Corp" || created.Currency != "EUR" || created.Timezone != "Europe/Paris" ||
		created.Metadata["tier"] != "gold" || created.CreatedAt.IsZero() {
		t.Errorf("GET after create: %+v", created)
	}

	// An update changes the members it has and keeps the others, as in
	// Lago; Lago's wrapped form works too. null clears a member.
	var updated schemas.Customer
	c.mustCall("POST", CustomersRoute, keyAcme, `{"customer": {"external_id": "cust 1", "name": "Acme SAS", "email": null}}`,
		http.StatusOK, &updated)
	if updated.Name != "Acme SAS" || updated.Email != "" || updated.Currency != "EUR" || updated.Timezone != "Europe/Paris" ||
		updated.Metadata["tier"] != "gold" || !updated.CreatedAt.Equal(created.CreatedAt) || !updated.UpdatedAt.After(created.UpdatedAt) {
		t.Errorf("after update: %+v, was %+v", updated, created)
	}
	var got schemas.Customer
	c.mustCall("GET", CustomersRoute+"/cust%201", keyAcme, "", http.StatusOK, &got)
	if got.Name != "Acme SAS" || got.Email != "" {
		t.Errorf("GET after update: %+v", got)
	}

	var list listPage[schemas.Customer]
	c.mustCall("GET", CustomersRoute, keyAcme, "", http.StatusOK, &list)
	if len(list.Data) != 1 || list.Data[0].ExternalID != "cust 1" || list.NextCursor != nil {
		t.Errorf("list: %+v", list)
	}

	c.mustCall("DELETE", CustomersRoute+"/cust%201", keyAcme, "", http.StatusNoContent, nil)
	code, body = c.call("GET", CustomersRoute+"/cust%201", keyAcme, "")
	wantMessage(t, wantFieldError(t, code, body, http.StatusNotFound, httpapi.CodeNotFound, ""), "GET /api/v1/customers")
	code, body = c.call("DELETE", CustomersRoute+"/cust%201", keyAcme, "")
	wantFieldError(t, code, body, http.StatusNotFound, httpapi.CodeNotFound, "")
	c.mustCall("GET", CustomersRoute, keyAcme, "", http.StatusOK, &list)
	if len(list.Data) != 0 {
		t.Errorf("list after delete: %+v", list)
	}
	// Created anew after a delete.
	c.createCustomer(keyAcme, `{"external_id": "cust 1"}`)
}

func TestCustomerValidation(t *testing.T) {
	c := newCatalogEnv(t)
	tests := []struct {
		name, body  string
		status      int
		code, field string
	}{
		{"unknown currency", `{"external_id": "c1", "currency": "XYZ"}`, 400, httpapi.CodeValidation, "currency"},
		{"lower-case currency", `{"external_id": "c1", "currency": "usd"}`, 400, httpapi.CodeValidation, "currency"},
		{"unknown time zone", `{"external_id": "c1", "timezone": "Mars/Olympus"}`, 400, httpapi.CodeValidation, "timezone"},
		{"no external_id", `{"name": "x"}`, 400, httpapi.CodeValidation, "external_id"},
		{"unknown field", `{"external_id": "c1", "nmae": "x"}`, 400, httpapi.CodeValidation, "nmae"},
		{"not an object", `[1]`, 400, httpapi.CodeValidation, "customer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := c.sub(t).call("POST", CustomersRoute, keyAcme, tt.body)
			wantFieldError(t, code, body, tt.status, tt.code, tt.field)
		})
	}
	t.Run("content type", func(t *testing.T) {
		code, body, _ := c.sub(t).do("POST", CustomersRoute, keyAcme, []byte(`{"external_id": "c1"}`), "Content-Type", "text/plain")
		wantFieldError(t, code, body, http.StatusUnsupportedMediaType, httpapi.CodeUnsupportedMedia, "")
	})
	t.Run("too large", func(t *testing.T) {
		big := `{"external_id": "c1", "name": "` + strings.Repeat("x", maxCatalogBytes) + `"}`
		code, body := c.sub(t).call("POST", CustomersRoute, keyAcme, big)
		wantFieldError(t, code, body, http.StatusRequestEntityTooLarge, httpapi.CodeTooLarge, "")
	})
	t.Run("method", func(t *testing.T) {
		code, body := c.sub(t).call("PATCH", CustomersRoute+"/c1", keyAcme, `{}`)
		wantFieldError(t, code, body, http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed, "")
	})
	var list listPage[schemas.Customer]
	c.mustCall("GET", CustomersRoute, keyAcme, "", http.StatusOK, &list)
	if len(list.Data) != 0 {
		t.Errorf("invalid customers were stored: %+v", list.Data)
	}
}

func TestCustomersPagination(t *testing.T) {
	c := newCatalogEnv(t)
	var want []string
	for _, id := range []string{"e", "a", "c", "b", "d/slash", "ü"} {
		c.createCustomer(keyAcme, `{"external_id": "`+id+`"}`)
		want = append(want, id)
	}
	slices.Sort(want)
	id := func(c schemas.Customer) string { return c.ExternalID }
	for _, limit := range []int{1, 2, 5, 6, 1000} {
		if got := listAll(c, CustomersRoute, keyAcme, "", limit, id); !slices.Equal(got, want) {
			t.Errorf("limit %d: %q, want %q", limit, got, want)
		}
	}
	var p listPage[schemas.Customer]
	c.mustCall("GET", CustomersRoute, keyAcme, "", http.StatusOK, &p)
	if len(p.Data) != len(want) || p.NextCursor != nil {
		t.Errorf("default page: %d items, next %v", len(p.Data), p.NextCursor)
	}

	for _, tt := range []struct{ query, field string }{
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=ten", "limit"},
		{"cursor=%25%25", "cursor"},
		{"cursor=", "cursor"},
		{"limit=1&limit=2", "limit"},
		{"page=2", "page"},
	} {
		code, body := c.call("GET", CustomersRoute+"?"+tt.query, keyAcme, "")
		wantFieldError(t, code, body, http.StatusBadRequest, httpapi.CodeValidation, tt.field)
	}
}

// Deleting a customer terminates its pending and active subscriptions, as
// in Lago; those of other customers, and ones already terminated, stay as
// they are.
func TestDeleteCustomerTerminatesSubscriptions(t *testing.T) {
	c := newCatalogEnv(t)
	c.createMeter(keyAcme, `{"key": "calls", "event_type": "call", "aggregation": "COUNT"}`)
	// No charges: one customer's subscriptions on one plan would otherwise
	// share its meter (refused, see TestOneSubscriptionPerMeter).
	c.createPlan(keyAcme, `{"code": "basic", "name": "Basic", "interval": "monthly", "amount_currency": "USD"}`)
	c.createCustomer(keyAcme, `{"external_id": "leaving"}`)
	c.createCustomer(keyAcme, `{"external_id": "staying"}`)
	c.clock.set(at(t, "2026-03-10T12:00:00Z"))
	c.createSubscription(keyAcme, `{"external_id": "active", "external_customer_id": "leaving", "plan_code": "basic", "subscription_at": "2026-01-01T00:00:00Z"}`)
	c.createSubscription(keyAcme, `{"external_id": "pending", "external_customer_id": "leaving", "plan_code": "basic", "subscription_at": "2026-06-01T00:00:00Z"}`)
	c.createSubscription(keyAcme, `{"external_id": "ended", "external_customer_id": "leaving", "plan_code": "basic", "subscription_at": "2026-01-01T00:00:00Z"}`)
	c.createSubscription(keyAcme, `{"external_id": "other", "external_customer_id": "staying", "plan_code": "basic", "subscription_at": "2026-01-01T00:00:00Z"}`)
	c.mustCall("DELETE", SubscriptionsRoute+"/ended", keyAcme, "", http.StatusOK, nil)
	endedAt := c.clock.now()

	deletedAt := at(t, "2026-03-11T08:30:00Z")
	c.clock.set(deletedAt)
	c.mustCall("DELETE", CustomersRoute+"/leaving", keyAcme, "", http.StatusNoContent, nil)

	for _, tt := range []struct {
		id         string
		status     schemas.SubscriptionStatus
		terminated time.Time
	}{
		{"active", schemas.StatusTerminated, deletedAt},
		{"pending", schemas.StatusTerminated, deletedAt},
		{"ended", schemas.StatusTerminated, endedAt},
		{"other", schemas.StatusActive, time.Time{}},
	} {
		s := c.getSubscription(keyAcme, tt.id)
		gotTerminated := time.Time{}
		if s.TerminatedAt != nil {
			gotTerminated = *s.TerminatedAt
		}
		if s.Status != tt.status || !gotTerminated.Equal(tt.terminated) {
			t.Errorf("%s: status %s terminated_at %v, want %s %v", tt.id, s.Status, s.TerminatedAt, tt.status, tt.terminated)
		}
	}
}

// A customer bills in one currency: a customer without one takes its
// first plan's, and the currency cannot change while a subscription in
// another currency is live.
func TestCustomerCurrencyFollowsSubscriptions(t *testing.T) {
	c := newCatalogEnv(t)
	c.createMeter(keyAcme, `{"key": "calls", "event_type": "call", "aggregation": "COUNT"}`)
	c.createPlan(keyAcme, `{"code": "usd", "name": "USD", "interval": "monthly", "amount_currency": "USD", "charges": []}`)
	c.createCustomer(keyAcme, `{"external_id": "c1"}`)
	c.createSubscription(keyAcme, `{"external_id": "s1", "external_customer_id": "c1", "plan_code": "usd"}`)
	var got schemas.Customer
	c.mustCall("GET", CustomersRoute+"/c1", keyAcme, "", http.StatusOK, &got)
	if got.Currency != "USD" {
		t.Errorf("currency after the first subscription: %q, want USD", got.Currency)
	}

	code, body := c.call("POST", CustomersRoute, keyAcme, `{"external_id": "c1", "currency": "EUR"}`)
	wantMessage(t, wantFieldError(t, code, body, http.StatusBadRequest, httpapi.CodeValidation, "currency"), `"s1"`, "terminate")
	c.mustCall("POST", CustomersRoute, keyAcme, `{"external_id": "c1", "currency": "USD", "name": "same currency"}`, http.StatusOK, nil)

	c.mustCall("DELETE", SubscriptionsRoute+"/s1", keyAcme, "", http.StatusOK, nil)
	c.mustCall("POST", CustomersRoute, keyAcme, `{"external_id": "c1", "currency": "EUR"}`, http.StatusOK, &got)
	if got.Currency != "EUR" {
		t.Errorf("currency after termination: %q, want EUR", got.Currency)
	}
}

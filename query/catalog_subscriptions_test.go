package query

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

func TestSubscriptionsCRUD(t *testing.T) {
	c := newCatalogEnv(t)
	c.catalogMeters(keyAcme)
	c.createPlan(keyAcme, basicPlan)
	c.createCustomer(keyAcme, `{"external_id": "c1", "timezone": "America/New_York", "currency": "USD"}`)
	c.createCustomer(keyAcme, `{"external_id": "c2"}`)
	now := at(t, "2026-04-15T10:00:00Z")
	c.clock.set(now)

	// Defaults: subscription_at now, the customer's time zone, calendar.
	code, body, header := c.do("POST", SubscriptionsRoute, keyAcme, []byte(`{"external_id": "s1", "external_customer_id": "c1", "plan_code": "basic"}`))
	if code != http.StatusCreated || header.Get("Location") != "/api/v1/subscriptions/s1" {
		t.Fatalf("create: %d %s, Location %q", code, body, header.Get("Location"))
	}
	s := c.getSubscription(keyAcme, "s1")
	if !s.SubscriptionAt.Equal(now) || s.Timezone != "America/New_York" || s.BillingTime != schemas.BillingCalendar ||
		s.Status != schemas.StatusActive || s.TerminatedAt != nil || s.EndingAt != nil {
		t.Errorf("GET after create: %+v", s)
	}
	// A customer without a time zone: UTC. Lago's wrapped form works.
	s2 := c.createSubscription(keyAcme, `{"subscription": {"external_id": "s2", "external_customer_id": "c2", "plan_code": "basic",
		"billing_time": "anniversary", "subscription_at": "2026-05-01T00:00:00+02:00", "ending_at": "2027-01-01T00:00:00Z"}}`)
	if s2.Timezone != "UTC" || s2.Status != schemas.StatusPending || s2.BillingTime != schemas.BillingAnniversary ||
		!s2.SubscriptionAt.Equal(at(t, "2026-04-30T22:00:00Z")) {
		t.Errorf("created: %+v", s2)
	}

	// DELETE terminates now; again, it returns the first termination.
	var terminated schemas.Subscription
	c.mustCall("DELETE", SubscriptionsRoute+"/s1", keyAcme, "", http.StatusOK, &terminated)
	if terminated.Status != schemas.StatusTerminated || terminated.TerminatedAt == nil || !terminated.TerminatedAt.Equal(now) {
		t.Errorf("DELETE: %+v", terminated)
	}
	c.clock.set(now.Add(3600e9))
	var again schemas.Subscription
	c.mustCall("DELETE", SubscriptionsRoute+"/s1", keyAcme, "", http.StatusOK, &again)
	if again.Status != schemas.StatusTerminated || again.TerminatedAt == nil || !again.TerminatedAt.Equal(now) {
		t.Errorf("second DELETE: %+v", again)
	}
	if s := c.getSubscription(keyAcme, "s1"); s.Status != schemas.StatusTerminated || !s.TerminatedAt.Equal(now) {
		t.Errorf("GET after DELETE: %+v", s)
	}

	for _, method := range []string{"GET", "DELETE"} {
		code, body := c.call(method, SubscriptionsRoute+"/nope", keyAcme, "")
		wantMessage(t, wantFieldError(t, code, body, http.StatusNotFound, httpapi.CodeNotFound, ""), "GET /api/v1/subscriptions")
	}
}

func TestSubscriptionValidation(t *testing.T) {
	c := newCatalogEnv(t)
	c.catalogMeters(keyAcme)
	c.createPlan(keyAcme, basicPlan) // USD
	c.createPlan(keyAcme, `{"code": "euro", "name": "Euro", "interval": "monthly", "amount_currency": "EUR"}`)
	c.createCustomer(keyAcme, `{"external_id": "c1", "currency": "USD"}`)
	c.createSubscription(keyAcme, `{"external_id": "taken", "external_customer_id": "c1", "plan_code": "basic"}`)
	c.mustCall("DELETE", SubscriptionsRoute+"/taken", keyAcme, "", http.StatusOK, nil)
	c.clock.set(at(t, "2026-04-15T10:00:00Z"))

	tests := []struct {
		name, body string
		fields     []string
		message    string
	}{
		{"external_id in use (terminated)", `{"external_id": "taken", "external_customer_id": "c1", "plan_code": "basic"}`,
			[]string{"external_id"}, "already exists"},
		{"unknown plan", `{"external_id": "s", "external_customer_id": "c1", "plan_code": "gold"}`,
			[]string{"plan_code"}, "GET /api/v1/plans"},
		{"unknown customer", `{"external_id": "s", "external_customer_id": "c9", "plan_code": "basic"}`,
			[]string{"external_customer_id"}, "POST /api/v1/customers"},
		{"unknown plan and customer", `{"external_id": "s", "external_customer_id": "c9", "plan_code": "gold"}`,
			[]string{"external_customer_id", "plan_code"}, ""},
		{"currency mismatch", `{"external_id": "s", "external_customer_id": "c1", "plan_code": "euro"}`,
			[]string{"plan_code"}, "EUR"},
		{"ending before the default start", `{"external_id": "s", "external_customer_id": "c1", "plan_code": "basic", "ending_at": "2026-01-01T00:00:00Z"}`,
			[]string{"ending_at"}, "subscription_at"},
		{"ending before start", `{"external_id": "s", "external_customer_id": "c1", "plan_code": "basic",
			"subscription_at": "2026-05-01T00:00:00Z", "ending_at": "2026-05-01T00:00:00Z"}`, []string{"ending_at"}, ""},
		{"billing time", `{"external_id": "s", "external_customer_id": "c1", "plan_code": "basic", "billing_time": "weekly"}`,
			[]string{"billing_time"}, "calendar"},
		{"time zone", `{"external_id": "s", "external_customer_id": "c1", "plan_code": "basic", "timezone": "EST5"}`,
			[]string{"timezone"}, ""},
		{"terminated_at", `{"external_id": "s", "external_customer_id": "c1", "plan_code": "basic", "terminated_at": "2026-05-01T00:00:00Z"}`,
			[]string{"terminated_at"}, "DELETE"},
		{"missing fields", `{}`, []string{"external_id", "external_customer_id", "plan_code"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := c.sub(t).call("POST", SubscriptionsRoute, keyAcme, tt.body)
			for _, field := range tt.fields {
				e := wantFieldError(t, code, body, http.StatusBadRequest, httpapi.CodeValidation, field)
				wantMessage(t, e, tt.message)
			}
		})
	}
	var list listPage[schemas.Subscription]
	c.mustCall("GET", SubscriptionsRoute, keyAcme, "", http.StatusOK, &list)
	if len(list.Data) != 1 {
		t.Errorf("the invalid requests created subscriptions: %+v", list.Data)
	}
}

func TestSubscriptionsList(t *testing.T) {
	c := newCatalogEnv(t)
	c.catalogMeters(keyAcme)
	// No charges: one customer's overlapping subscriptions on one plan
	// would otherwise share its meter (refused, see TestOneSubscriptionPerMeter).
	c.createPlan(keyAcme, `{"code": "basic", "name": "Basic", "interval": "monthly", "amount_currency": "USD"}`)
	c.createPlan(keyAcme, `{"code": "pro", "name": "Pro", "interval": "yearly", "amount_currency": "USD"}`)
	c.createCustomer(keyAcme, `{"external_id": "c1"}`)
	c.createCustomer(keyAcme, `{"external_id": "c2"}`)
	c.clock.set(at(t, "2026-04-15T10:00:00Z"))
	for _, s := range []struct{ id, customer, plan, at string }{
		{"a-active", "c1", "basic", "2026-01-01T00:00:00Z"},
		{"b-pending", "c1", "pro", "2026-09-01T00:00:00Z"},
		{"c-terminated", "c2", "basic", "2026-01-01T00:00:00Z"},
		{"d-active", "c2", "pro", "2026-04-15T10:00:00Z"},
		{"e-pending", "c2", "basic", "2026-04-15T10:00:01Z"},
		{"f-active", "c1", "basic", "2025-01-01T00:00:00Z"},
	} {
		c.createSubscription(keyAcme, `{"external_id": "`+s.id+`", "external_customer_id": "`+s.customer+`", "plan_code": "`+s.plan+`", "subscription_at": "`+s.at+`"}`)
	}
	c.mustCall("DELETE", SubscriptionsRoute+"/c-terminated", keyAcme, "", http.StatusOK, nil)
	// A subscription past its ending_at is terminated too.
	c.createSubscription(keyAcme, `{"external_id": "g-ended", "external_customer_id": "c1", "plan_code": "pro",
		"subscription_at": "2025-01-01T00:00:00Z", "ending_at": "2026-01-01T00:00:00Z"}`)

	id := func(s schemas.Subscription) string { return s.ExternalID }
	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"", []string{"a-active", "b-pending", "c-terminated", "d-active", "e-pending", "f-active", "g-ended"}},
		{"&status=active", []string{"a-active", "d-active", "f-active"}},
		{"&status=pending", []string{"b-pending", "e-pending"}},
		{"&status=terminated", []string{"c-terminated", "g-ended"}},
		{"&external_customer_id=c1", []string{"a-active", "b-pending", "f-active", "g-ended"}},
		{"&plan_code=basic", []string{"a-active", "c-terminated", "e-pending", "f-active"}},
		{"&external_customer_id=c1&plan_code=basic&status=active", []string{"a-active", "f-active"}},
		{"&external_customer_id=c3", nil},
	} {
		for _, limit := range []int{1, 2, 100} {
			if got := listAll(c, SubscriptionsRoute, keyAcme, tt.query, limit, id); !slices.Equal(got, tt.want) {
				t.Errorf("%s limit %d: %q, want %q", tt.query, limit, got, tt.want)
			}
		}
	}
	var p listPage[schemas.Subscription]
	c.mustCall("GET", SubscriptionsRoute+"?status=pending", keyAcme, "", http.StatusOK, &p)
	for _, s := range p.Data {
		if s.Status != schemas.StatusPending {
			t.Errorf("status filter returned %+v", s)
		}
	}

	for _, tt := range []struct{ query, field string }{
		{"status=canceled", "status"},
		{"status=active&status=pending", "status"},
		{"customer=c1", "customer"},
		{"limit=-1", "limit"},
		{"external_customer_id=", "external_customer_id"},
		{"plan_code=", "plan_code"},
	} {
		code, body := c.call("GET", SubscriptionsRoute+"?"+tt.query, keyAcme, "")
		wantFieldError(t, code, body, http.StatusBadRequest, httpapi.CodeValidation, tt.field)
	}
}

// The status filter runs on the store's pages of at most 100; a page of
// the API may take several of them.
func TestSubscriptionsStatusFilterAcrossStorePages(t *testing.T) {
	c := newCatalogEnv(t)
	now := at(t, "2026-04-15T10:00:00Z")
	c.clock.set(now)
	var pending []string
	for i := range 230 {
		s := schemas.Subscription{ExternalID: fmt.Sprintf("s%03d", i), ExternalCustomerID: "c1", PlanCode: "basic",
			SubscriptionAt: now.AddDate(0, -1, 0), BillingTime: schemas.BillingCalendar, Timezone: "UTC"}
		if i%45 == 7 { // 6 of them, far apart
			s.SubscriptionAt = now.AddDate(0, 1, 0)
			pending = append(pending, s.ExternalID)
		}
		if _, err := c.store.CreateSubscription(context.Background(), "acme", s); err != nil {
			t.Fatal(err)
		}
	}
	id := func(s schemas.Subscription) string { return s.ExternalID }
	for _, limit := range []int{1, 4, 6, 1000} {
		if got := listAll(c, SubscriptionsRoute, keyAcme, "&status=pending", limit, id); !slices.Equal(got, pending) {
			t.Errorf("limit %d: %q, want %q", limit, got, pending)
		}
	}
	if got := listAll(c, SubscriptionsRoute, keyAcme, "&status=active", 1000, id); len(got) != 230-len(pending) {
		t.Errorf("%d active, want %d", len(got), 230-len(pending))
	}
}

package query

import (
	"net/http"
	"slices"
	"testing"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

// TestCatalogIsolation calls every catalog route with globex's key on
// acme's customers, plans, subscriptions and usage: globex sees none of
// them (404, empty lists, unknown in validation) and changes none of them.
func TestCatalogIsolation(t *testing.T) {
	c := newCatalogEnv(t)
	callsMeter, _ := c.catalogMeters(keyAcme)
	c.createPlan(keyAcme, basicPlan)
	c.createCustomer(keyAcme, `{"external_id": "c1", "name": "Acme's customer", "currency": "USD"}`)
	c.createSubscription(keyAcme, `{"external_id": "s1", "external_customer_id": "c1", "plan_code": "basic", "subscription_at": "2026-01-01T00:00:00Z"}`)
	c.insert(calls(t, callsMeter, "acme", "c1", "eu", "2026-02-02T00:00:00Z", 10)...)
	c.clock.set(at(t, "2026-02-20T00:00:00Z"))
	snapshot := func() (schemas.Customer, schemas.Plan, schemas.Subscription, usageJSONBody) {
		var cust schemas.Customer
		var plan schemas.Plan
		c.mustCall("GET", CustomersRoute+"/c1", keyAcme, "", http.StatusOK, &cust)
		c.mustCall("GET", PlansRoute+"/basic", keyAcme, "", http.StatusOK, &plan)
		return cust, plan, c.getSubscription(keyAcme, "s1"), c.usage(keyAcme, "s1", "")
	}
	custBefore, planBefore, subBefore, usageBefore := snapshot()
	if usageBefore.ChargesTotal.AmountCents != 10 {
		t.Fatalf("acme's usage: %+v", usageBefore)
	}

	otherPlan := `{"code": "basic", "name": "Globex", "interval": "monthly", "amount_currency": "EUR", "charges": []}`
	tests := []struct {
		method, path, body string
		status             int
		code               string
		fields             []string // details that must be there
		notFields          []string // and must not: they would reveal acme's objects
	}{
		{"GET", "/api/v1/customers/c1", "", 404, httpapi.CodeNotFound, nil, nil},
		{"DELETE", "/api/v1/customers/c1", "", 404, httpapi.CodeNotFound, nil, nil},
		{"GET", "/api/v1/plans/basic", "", 404, httpapi.CodeNotFound, nil, nil},
		{"PUT", "/api/v1/plans/basic", otherPlan, 404, httpapi.CodeNotFound, nil, nil},
		{"DELETE", "/api/v1/plans/basic", "", 404, httpapi.CodeNotFound, nil, nil},
		{"GET", "/api/v1/subscriptions/s1", "", 404, httpapi.CodeNotFound, nil, nil},
		{"DELETE", "/api/v1/subscriptions/s1", "", 404, httpapi.CodeNotFound, nil, nil},
		{"GET", "/api/v1/subscriptions/s1/usage", "", 404, httpapi.CodeNotFound, nil, nil},
		{"GET", "/api/v1/subscriptions/s1/usage?period=previous", "", 404, httpapi.CodeNotFound, nil, nil},
		// acme's meters, plan and customer do not exist for globex.
		{"POST", "/api/v1/plans", basicPlan, 400, httpapi.CodeValidation,
			[]string{"charges[0].meter", "charges[1].meter"}, []string{"code"}},
		{"POST", "/api/v1/subscriptions", `{"external_id": "s1", "external_customer_id": "c1", "plan_code": "basic"}`,
			400, httpapi.CodeValidation, []string{"external_customer_id", "plan_code"}, []string{"external_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			code, body := c.sub(t).call(tt.method, tt.path, keyGlobex, tt.body)
			e := wantFieldError(t, code, body, tt.status, tt.code, "")
			for _, f := range tt.fields {
				if !slices.Contains(e.fields(), f) {
					t.Errorf("details %q lack %q", e.fields(), f)
				}
			}
			for _, f := range tt.notFields {
				if slices.Contains(e.fields(), f) {
					t.Errorf("details %q name %q: globex sees acme's object", e.fields(), f)
				}
			}
			// Without a key, nothing at all.
			code, body = c.sub(t).call(tt.method, tt.path, "", tt.body)
			wantFieldError(t, code, body, http.StatusUnauthorized, httpapi.CodeUnauthorized, "")
		})
	}
	for _, path := range []string{CustomersRoute, PlansRoute, SubscriptionsRoute,
		SubscriptionsRoute + "?external_customer_id=c1", SubscriptionsRoute + "?plan_code=basic&status=active"} {
		var p listPage[map[string]any]
		c.mustCall("GET", path, keyGlobex, "", http.StatusOK, &p)
		if len(p.Data) != 0 || p.NextCursor != nil {
			t.Errorf("globex GET %s: %+v", path, p)
		}
	}

	// globex's own objects under the same ids are new, and separate.
	c.mustCall("POST", CustomersRoute, keyGlobex, `{"external_id": "c1", "name": "Globex's customer", "currency": "EUR"}`, http.StatusCreated, nil)
	c.mustCall("POST", PlansRoute, keyGlobex, otherPlan, http.StatusCreated, nil)
	c.mustCall("POST", SubscriptionsRoute, keyGlobex, `{"external_id": "s1", "external_customer_id": "c1", "plan_code": "basic",
		"subscription_at": "2026-02-01T00:00:00Z"}`, http.StatusCreated, nil)
	c.mustCall("DELETE", SubscriptionsRoute+"/s1", keyGlobex, "", http.StatusOK, nil)
	c.mustCall("DELETE", PlansRoute+"/basic", keyGlobex, "", http.StatusConflict, nil) // its subscription keeps it
	c.mustCall("DELETE", CustomersRoute+"/c1", keyGlobex, "", http.StatusNoContent, nil)

	custAfter, planAfter, subAfter, usageAfter := snapshot()
	if custAfter.Name != custBefore.Name || custAfter.Currency != "USD" || !custAfter.UpdatedAt.Equal(custBefore.UpdatedAt) {
		t.Errorf("acme's customer changed: %+v, was %+v", custAfter, custBefore)
	}
	if planAfter.Name != planBefore.Name || planAfter.AmountCurrency != "USD" || !planAfter.UpdatedAt.Equal(planBefore.UpdatedAt) {
		t.Errorf("acme's plan changed: %+v, was %+v", planAfter, planBefore)
	}
	if subAfter.Status != schemas.StatusActive || subAfter.TerminatedAt != nil || subBefore.Status != schemas.StatusActive {
		t.Errorf("acme's subscription changed: %+v, was %+v", subAfter, subBefore)
	}
	if usageAfter.Total != usageBefore.Total || usageAfter.ChargesTotal != usageBefore.ChargesTotal {
		t.Errorf("acme's usage changed: %+v, was %+v", usageAfter, usageBefore)
	}
}

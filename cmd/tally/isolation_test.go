package main

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestOrganizationIsolationEveryRoute calls every API route with globex's
// key (or globex's key and acme's id in the path) against acme's data, on
// the one base URL of the real pipeline. Nothing of acme's may come back,
// and nothing of acme's may change. The table must name every route the
// services register: a new route without a case fails here.
func TestOrganizationIsolationEveryRoute(t *testing.T) {
	p := startPipeline(t)
	call := func(key, method, path, body string) (int, string) {
		t.Helper()
		code, resp := p.do(method, p.apiURL+path, key, "application/json", []byte(body))
		return code, string(resp)
	}
	must := func(key, method, path, body string, want int) string {
		t.Helper()
		return string(p.mustAPI(key, method, path, body, want))
	}
	// acme's data; "acme-secret" marks every name that must never reach globex.
	must(acmeKey, "POST", "/api/v1/meters", `{"key": "acme_calls", "name": "acme-secret meter", "event_type": "call", "aggregation": "COUNT"}`, http.StatusCreated)
	must(acmeKey, "POST", "/api/v1/customers", `{"external_id": "acme-cust", "name": "acme-secret customer"}`, http.StatusCreated)
	must(acmeKey, "POST", "/api/v1/plans", `{"code": "acme-plan", "name": "acme-secret plan", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"id": "acme_charge", "meter": "acme_calls", "charge_model": "standard", "properties": {"amount": "1"}}]}`, http.StatusCreated)
	must(acmeKey, "POST", "/api/v1/subscriptions", `{"external_id": "acme-sub", "external_customer_id": "acme-cust", "plan_code": "acme-plan", "name": "acme-secret sub"}`, http.StatusCreated)
	p.postEvents(acmeKey, ev("acme-e1", "call", "acme-cust", "", nil))
	// A dead letter of acme's: a value that is not a number.
	must(acmeKey, "POST", "/api/v1/meters", `{"key": "acme_tokens", "event_type": "tokens", "aggregation": "SUM", "value_property": "$.n"}`, http.StatusCreated)
	p.postEvents(acmeKey, ev("acme-e2", "tokens", "acme-cust", "", map[string]any{"n": "acme-secret"}))
	deadLetters := func() string { return must(acmeKey, "GET", "/api/v1/dead_letters", "", http.StatusOK) }
	waitFor(t, func() bool { return strings.Contains(deadLetters(), `"total":1`) },
		func() string { return "acme's dead letters: " + deadLetters() })
	usageBefore := func() string {
		return must(acmeKey, "GET", "/api/v1/subscriptions/acme-sub/usage", "", http.StatusOK)
	}
	waitFor(t, func() bool { return strings.Contains(usageBefore(), `"amount_cents":100`) },
		func() string { return "acme's usage: " + usageBefore() })
	before := usageBefore()

	lagoEvent := `{"event": {"transaction_id": "g1", "external_subscription_id": "acme-sub", "code": "call", "properties": {}}}`
	cases := []struct {
		pattern string
		method  string
		path    string
		body    string
		want    []int // any of these
	}{
		{"GET /api/v1/meters", "GET", "/api/v1/meters", "", []int{200}},
		{"GET /api/v1/meters/{key}", "GET", "/api/v1/meters/acme_calls", "", []int{404}},
		{"GET /api/v1/meters/{key}/query", "GET", "/api/v1/meters/acme_calls/query?customer_id=acme-cust", "", []int{404}},
		{"DELETE /api/v1/meters/{key}", "DELETE", "/api/v1/meters/acme_calls", "", []int{404}},
		{"GET /api/v1/customers", "GET", "/api/v1/customers", "", []int{200}},
		{"GET /api/v1/customers/{external_id}", "GET", "/api/v1/customers/acme-cust", "", []int{404}},
		{"DELETE /api/v1/customers/{external_id}", "DELETE", "/api/v1/customers/acme-cust", "", []int{404}},
		{"GET /api/v1/plans", "GET", "/api/v1/plans", "", []int{200}},
		{"GET /api/v1/plans/{code}", "GET", "/api/v1/plans/acme-plan", "", []int{404}},
		{"PUT /api/v1/plans/{code}", "PUT", "/api/v1/plans/acme-plan", `{"code": "acme-plan", "name": "stolen", "interval": "monthly", "amount_currency": "USD", "charges": []}`, []int{404}},
		{"DELETE /api/v1/plans/{code}", "DELETE", "/api/v1/plans/acme-plan", "", []int{404}},
		{"GET /api/v1/subscriptions", "GET", "/api/v1/subscriptions", "", []int{200}},
		{"GET /api/v1/subscriptions/{external_id}", "GET", "/api/v1/subscriptions/acme-sub", "", []int{404}},
		{"GET /api/v1/subscriptions/{external_id}/usage", "GET", "/api/v1/subscriptions/acme-sub/usage", "", []int{404}},
		{"DELETE /api/v1/subscriptions/{external_id}", "DELETE", "/api/v1/subscriptions/acme-sub", "", []int{404}},
		{"PUT /api/v1/subscriptions/{external_id}", "PUT", "/api/v1/subscriptions/acme-sub", `{"ending_at": "2099-01-01T00:00:00Z"}`, []int{404}},
		{"POST /api/v1/subscriptions", "POST", "/api/v1/subscriptions", `{"external_id": "acme-sub", "external_customer_id": "acme-cust", "plan_code": "acme-plan"}`, []int{400}},
		{"GET /api/v1/customers/{external_customer_id}/current_usage", "GET", "/api/v1/customers/acme-cust/current_usage?external_subscription_id=acme-sub", "", []int{404}},
		{"GET /api/v1/integration/organization/{org_id}/customers", "GET", "/api/v1/integration/organization/acme/customers", "", []int{403}},
		{"POST /api/v1/integration/organization/{org_id}/usage", "POST", "/api/v1/integration/organization/acme/usage",
			`{"usage_record_id": "g1", "customer_id": "acme-cust", "usage_data": [{"resource": "acme_calls", "quantity": 1}]}`, []int{403}},
		{"POST /api/v1/companies/{company_id}/subscriptions/{id}/usage", "POST", "/api/v1/companies/cmp_acme/subscriptions/acme-sub/usage",
			`{"product_metric_pricing_id": "acme_charge", "period": {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-02-01T00:00:00Z"}}`, []int{404}},
		{"GET /api/v1/dead_letters", "GET", "/api/v1/dead_letters?customer_id=acme-cust", "", []int{200}},
		{"GET /api/v1/status", "GET", "/api/v1/status", "", []int{200}},
		{"POST /api/v1/events", "POST", "/api/v1/events", lagoEvent, []int{422}},
		{"POST /api/v1/events/batch", "POST", "/api/v1/events/batch", `{"events": [` + strings.TrimSuffix(strings.TrimPrefix(lagoEvent, `{"event": `), "}") + `]}`, []int{422}},
		// Writes land in globex's own organization, whatever they name.
		{"POST /api/v1/meters", "POST", "/api/v1/meters", `{"key": "acme_calls", "event_type": "other", "aggregation": "COUNT"}`, []int{201}},
		{"POST /api/v1/customers", "POST", "/api/v1/customers", `{"external_id": "acme-cust", "name": "globex's own"}`, []int{201}},
		{"POST /api/v1/plans", "POST", "/api/v1/plans", `{"code": "acme-plan", "name": "globex plan", "interval": "weekly", "amount_currency": "EUR", "charges": []}`, []int{201}},
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.pattern] = true
		code, resp := call(globexKey, tc.method, tc.path, tc.body)
		if !slices.Contains(tc.want, code) {
			t.Errorf("%s %s as globex: %d %s, want one of %v", tc.method, tc.path, code, resp, tc.want)
		}
		if strings.Contains(resp, "acme-secret") || strings.Contains(resp, `"amount_cents":100`) {
			t.Errorf("%s %s as globex leaks acme's data: %s", tc.method, tc.path, resp)
		}
	}
	for _, pattern := range append(p.querySvc.Patterns(), p.ingestSvc.Patterns()...) {
		if method, _, ok := strings.Cut(pattern, " "); ok && !covered[pattern] {
			t.Errorf("route %s (%s) has no isolation case", pattern, method)
		}
	}

	// globex has no events and no dead letters, whatever acme has.
	if got := must(globexKey, "GET", "/api/v1/dead_letters", "", http.StatusOK); got != `{"data":[],"by_reason":[],"total":0}`+"\n" {
		t.Errorf("globex's dead letters: %s", got)
	}
	if got := must(globexKey, "GET", "/api/v1/status", "", http.StatusOK); !strings.Contains(got, `"events":{"last_hour":0,"last_24h":0,"latest_ingested_at":null},"dead_letters":{"last_24h":0}`) {
		t.Errorf("globex's status: %s", got)
	}
	if got := must(acmeKey, "GET", "/api/v1/status", "", http.StatusOK); !strings.Contains(got, `"events":{"last_hour":2,"last_24h":2,`) || !strings.Contains(got, `"dead_letters":{"last_24h":1}`) {
		t.Errorf("acme's status: %s", got)
	}

	// acme's data is as it was.
	for path, marker := range map[string]string{
		"/api/v1/meters/acme_calls":       `"name":"acme-secret meter"`,
		"/api/v1/customers/acme-cust":     `"name":"acme-secret customer"`,
		"/api/v1/plans/acme-plan":         `"name":"acme-secret plan"`,
		"/api/v1/subscriptions/acme-sub":  `"status":"active"`,
		"/api/v1/meters/acme_calls/query": `"value":1`,
		"/api/v1/dead_letters":            `"n":"acme-secret"`,
	} {
		if resp := must(acmeKey, "GET", path, "", http.StatusOK); !strings.Contains(resp, marker) {
			t.Errorf("acme's %s changed: %s, want %s", path, resp, marker)
		}
	}
	if after := usageBefore(); after != before {
		t.Errorf("acme's usage changed:\n%s\n%s", before, after)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"
)

// The seed document's examples (../shared/seeds/priceops-customers-and-usage-api.txt),
// verbatim but for the comments of the usage record, which are not JSON,
// and the array brackets the customers response leaves out around its
// two objects (kept with the priceops package's tests).
var priceOpsSeedCustomers = readFile("../../query/priceops/testdata/seed-customers.json")

const (
	priceOpsSeedUsageRecord = `
{
    "usage_record_id" : "123457",
    "customer_id" : "1008",
    "usage_data" : [
        {
            "resource" : "API",
            "quantity" : 5000
        }
    ]
}`
)

// priceOps sends a request the way the seed shows: "Authorization:
// {API_KEY}", on the one base URL.
func (p *pipeline) priceOps(method, org, route, key, body string) (int, []byte) {
	p.t.Helper()
	url := p.apiURL + "/api/v1/integration/organization/" + org + "/" + route
	var contentType string
	if body != "" {
		contentType = "application/json"
	}
	return p.do(method, url, "", contentType, []byte(body), "Authorization", key)
}

// createCatalog posts a native catalog object and expects 200 or 201.
func (p *pipeline) createCatalog(key, route, body string) {
	p.t.Helper()
	code, resp := p.do("POST", p.apiURL+route, key, "application/json", []byte(body))
	if code != http.StatusCreated && code != http.StatusOK {
		p.t.Fatalf("POST %s: %d %s", route, code, resp)
	}
}

func TestContractPriceOps(t *testing.T) {
	p := startPipeline(t)
	// The resource "API" is a meter key: each usage record item is an
	// event whose $.quantity the meter sums.
	p.createMeter(acmeKey, `{"key": "API", "event_type": "priceops_api", "aggregation": "SUM", "value_property": "$.quantity"}`)
	for _, plan := range []string{
		`{"code": "better", "name": "Better", "interval": "monthly", "amount_currency": "USD",
		  "metadata": {"scenario_name": "Product Launch", "project_name": "New Project"},
		  "charges": [{"meter": "API", "charge_model": "standard", "properties": {"amount": "0.001"}}]}`,
		// A fixed fee only: a customer's two live subscriptions cannot both
		// charge the meter API (each would bill all of its usage), and the
		// seed's customers hold both plans with the resource list ["API"].
		`{"code": "good_mvp", "name": "Good_MVP", "interval": "monthly", "amount_cents": 2900, "amount_currency": "USD",
		  "metadata": {"scenario_name": "Product Launch", "project_name": "Project - MVP Launch"}}`,
	} {
		p.createCatalog(acmeKey, "/api/v1/plans", plan)
	}
	since := time.Now().UTC().AddDate(0, 0, -7).Format(time.RFC3339)
	for _, customer := range []string{"1007", "1008"} {
		p.createCatalog(acmeKey, "/api/v1/customers", fmt.Sprintf(`{"external_id": %q}`, customer))
		for _, plan := range []string{"better", "good_mvp"} {
			p.createCatalog(acmeKey, "/api/v1/subscriptions", fmt.Sprintf(
				`{"external_id": "%s-%s", "external_customer_id": %q, "plan_code": %q, "subscription_at": %q}`, customer, plan, customer, plan, since))
		}
	}

	// GET customers: the seed's response.
	code, body := p.priceOps("GET", "acme", "customers", acmeKey, "")
	if code != http.StatusOK || !sameJSONValue(t, body, []byte(priceOpsSeedCustomers)) {
		t.Fatalf("customers: %d %s\nwant %s", code, body, priceOpsSeedCustomers)
	}

	// POST the seed's usage record, then once more as a retry: it is
	// metered once.
	for range 2 {
		code, body = p.priceOps("POST", "acme", "usage", acmeKey, priceOpsSeedUsageRecord)
		if code != http.StatusAccepted || !sameJSONValue(t, body, []byte(`{"usage_record_id": "123457", "accepted": 1}`)) {
			t.Fatalf("usage record: %d %s", code, body)
		}
	}
	hour := time.Hour
	window := params("from", time.Now().UTC().Add(-hour).Format(time.RFC3339), "to", time.Now().UTC().Add(hour).Format(time.RFC3339), "group_by", "customer_id")
	p.waitUsage(acmeKey, "API", window, "customer_id=1008 => 5000")

	// An unknown resource and a quantity that is not a number are 400s
	// naming them.
	code, body = p.priceOps("POST", "acme", "usage", acmeKey,
		`{"usage_record_id": "123458", "customer_id": "1008", "usage_data": [{"resource": "SMS", "quantity": 1}, {"resource": "API", "quantity": "5000"}]}`)
	if code != http.StatusBadRequest || !bytes.Contains(body, []byte(`"field":"usage_data[0].resource"`)) || !bytes.Contains(body, []byte(`"field":"usage_data[1].quantity"`)) {
		t.Errorf("invalid record: %d %s", code, body)
	}

	// Another organization: its key on acme's ORG_ID, or acme's key on its
	// ORG_ID, is 403 without data; its own list is empty.
	for _, tc := range []struct{ method, org, route, key, body string }{
		{"GET", "acme", "customers", globexKey, ""},
		{"GET", "globex", "customers", acmeKey, ""},
		{"POST", "acme", "usage", globexKey, priceOpsSeedUsageRecord},
		{"POST", "globex", "usage", acmeKey, priceOpsSeedUsageRecord},
	} {
		code, body := p.priceOps(tc.method, tc.org, tc.route, tc.key, tc.body)
		if code != http.StatusForbidden || !bytes.Contains(body, []byte(`"code":"forbidden"`)) || bytes.Contains(body, []byte("1008")) {
			t.Errorf("%s %s of %s with another key: %d %s", tc.method, tc.route, tc.org, code, body)
		}
	}
	if code, body := p.priceOps("GET", "globex", "customers", globexKey, ""); code != http.StatusOK || string(bytes.TrimSpace(body)) != `[]` {
		t.Errorf("globex customers: %d %s", code, body)
	}
	// globex has no meter "API": the same record is a 400 there.
	if code, body := p.priceOps("POST", "globex", "usage", globexKey, priceOpsSeedUsageRecord); code != http.StatusBadRequest {
		t.Errorf("globex usage record: %d %s", code, body)
	}
	p.waitUsage(acmeKey, "API", window, "customer_id=1008 => 5000")
}

// sameJSONValue reports whether a and b hold the same JSON value.
func sameJSONValue(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if json.Unmarshal(a, &va) != nil {
		return false
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return string(b)
}

package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestCompatibleWritesReachTheirMeter runs on the whole pipeline what
// decides which meter counts an event written through PriceOps or Lago:
//
//   - a PriceOps item is metered by its resource's meter alone: its event
//     is addressed to it (type "@API"), so the COUNT meter "requests" of
//     the same event type as "API" counts none of the items, and records
//     are accepted beside it;
//   - a Lago event sent with the billable_metric.code that current_usage
//     reports (the meter's event_type) is metered by that meter;
//   - a transaction_id reused on two subscriptions of one customer is one
//     event (org, customer, transaction_id): the first counts.
//
// Hand-computed: API = 5000 + 30 (PriceOps) + 100 (Lago, the reported
// code) + 10 (Lago t1, the first of two) + 1 (native) = 5141; requests
// counts every event of type api but no PriceOps item: by-reported-code,
// t1 and native-1 = 3.
func TestCompatibleWritesReachTheirMeter(t *testing.T) {
	p := startPipeline(t)
	call := func(method, path, body string, want int) []byte {
		t.Helper()
		return p.mustAPI(acmeKey, method, path, body, want)
	}
	const usagePath = "/api/v1/integration/organization/acme/usage"
	record := func(id string, quantity int) string {
		return fmt.Sprintf(`{"usage_record_id": %q, "customer_id": "1008", "usage_data": [{"resource": "API", "quantity": %d}]}`, id, quantity)
	}

	call("POST", "/api/v1/meters", `{"key": "API", "name": "API usage", "event_type": "api", "aggregation": "SUM", "value_property": "$.quantity"}`, http.StatusCreated)
	call("POST", "/api/v1/meters", `{"key": "requests", "event_type": "api", "aggregation": "COUNT"}`, http.StatusCreated)
	call("POST", "/api/v1/customers", `{"external_id": "1008", "currency": "USD"}`, http.StatusCreated)
	call("POST", "/api/v1/plans", `{"code": "metered", "name": "Metered", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "API", "charge_model": "standard", "properties": {"amount": "0.01"}}]}`, http.StatusCreated)
	call("POST", "/api/v1/plans", `{"code": "support", "name": "Support", "interval": "monthly", "amount_currency": "USD", "charges": []}`, http.StatusCreated)
	call("POST", "/api/v1/subscriptions", `{"external_id": "sub-a", "external_customer_id": "1008", "plan_code": "metered"}`, http.StatusCreated)
	call("POST", "/api/v1/subscriptions", `{"external_id": "sub-b", "external_customer_id": "1008", "plan_code": "support"}`, http.StatusCreated)

	// 1. "requests" shares the event type of "API": the records are
	// accepted, and their items are API's alone (checked at the end).
	call("POST", usagePath, record("123457", 5000), http.StatusAccepted)
	call("POST", usagePath, record("123458", 30), http.StatusAccepted)

	// 2. The code current_usage reports is the code to send.
	var current struct {
		CustomerUsage struct {
			ChargesUsage []struct {
				BillableMetric struct{ Code, Name string } `json:"billable_metric"`
			} `json:"charges_usage"`
		} `json:"customer_usage"`
	}
	mustJSON(t, call("GET", "/api/v1/customers/1008/current_usage?external_subscription_id=sub-a", "", http.StatusOK), &current)
	if cu := current.CustomerUsage.ChargesUsage; len(cu) != 1 || cu[0].BillableMetric.Code != "api" || cu[0].BillableMetric.Name != "API usage" {
		t.Fatalf("current usage charges %+v, want the billable metric of API with code api (its event_type)", cu)
	}
	code := current.CustomerUsage.ChargesUsage[0].BillableMetric.Code
	now := time.Now().Unix()
	call("POST", "/api/v1/events", fmt.Sprintf(`{"event": {"transaction_id": "by-reported-code", "external_subscription_id": "sub-a", "code": %q,
		"timestamp": %d, "properties": {"quantity": 100}}}`, code, now), http.StatusOK)

	// 3. One transaction_id on two subscriptions of one customer.
	call("POST", "/api/v1/events/batch", fmt.Sprintf(`{"events": [
		{"transaction_id": "t1", "external_subscription_id": "sub-a", "code": "api", "timestamp": %d, "properties": {"quantity": 10}},
		{"transaction_id": "t1", "external_subscription_id": "sub-b", "code": "api", "timestamp": %d, "properties": {"quantity": 20}}]}`, now, now), http.StatusOK)

	// A native request, sent last: every event above has the same record
	// key (acme/1008), so once it counts, they have all been read.
	call("POST", "/api/v1/events", `{"id": "native-1", "type": "api", "customer_id": "1008", "properties": {"kind": "request", "quantity": 1}}`, http.StatusAccepted)

	window := params("from", time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), "to", time.Now().UTC().Add(time.Hour).Format(time.RFC3339),
		"group_by", "customer_id")
	p.waitUsage(acmeKey, "requests", window, "customer_id=1008 => 3")
	p.waitUsage(acmeKey, "API", window, "customer_id=1008 => 5141")
}

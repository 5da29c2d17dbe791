package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestOneCustomerThreeDialects sends one customer's usage through all
// three write paths, PriceOps usage records, Lago events and Tally's own
// events, then asks the three read APIs about it. Hand-computed:
//
//	this month (calendar, New York): 5000 (PriceOps) + 250.25 (Lago) + 0.5 (native) = 5250.75 units
//	graduated: (0, 1000] free; (1000, 10000] 0.002 USD + 1 flat; above 0.001
//	           4250.75 × 0.002 + 1 = 9.5015 USD -> 9.50 -> 950 cents
//
// and an event at 2026-03-01T03:00Z (22:00 on February 28 in New York)
// counts in February, one at 05:00Z (midnight) in March.
func TestOneCustomerThreeDialects(t *testing.T) {
	p := startPipeline(t)
	waitPastMonthEnd(t, "America/New_York")
	call := func(method, path, body string, want int, header ...string) []byte {
		t.Helper()
		return p.mustAPI(acmeKey, method, path, body, want, header...)
	}

	call("POST", "/api/v1/meters", `{"key": "API", "name": "API usage", "event_type": "api", "aggregation": "SUM", "value_property": "$.quantity"}`, http.StatusCreated)
	call("POST", "/api/v1/customers", `{"external_id": "1008", "name": "Customer 1008", "currency": "USD", "timezone": "America/New_York"}`, http.StatusCreated)
	var plan struct {
		Charges []struct {
			ID string `json:"id"`
		} `json:"charges"`
	}
	mustJSON(t, call("POST", "/api/v1/plans", `{"code": "growth", "name": "Growth", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "API", "charge_model": "graduated", "properties": {"graduated_ranges": [
			{"from_value": 0, "to_value": 1000, "per_unit_amount": "0", "flat_amount": "0"},
			{"from_value": 1000, "to_value": 10000, "per_unit_amount": "0.002", "flat_amount": "1"},
			{"from_value": 10000, "to_value": null, "per_unit_amount": "0.001", "flat_amount": "0"}]}}]}`, http.StatusCreated), &plan)
	chargeID := plan.Charges[0].ID
	call("POST", "/api/v1/subscriptions", `{"external_id": "sub-1008", "external_customer_id": "1008", "plan_code": "growth",
		"subscription_at": "2026-01-01T05:00:00Z"}`, http.StatusCreated)

	// Three write paths for one customer and one meter.
	call("POST", "/api/v1/integration/organization/acme/usage",
		`{"usage_record_id": "123457", "customer_id": "1008", "usage_data": [{"resource": "API", "quantity": 5000}]}`, http.StatusAccepted)
	call("POST", "/api/v1/events", fmt.Sprintf(`{"event": {"transaction_id": "lago-1", "external_customer_id": "1008", "code": "api",
		"timestamp": %d, "properties": {"quantity": "250.25"}}}`, time.Now().Unix()), http.StatusOK)
	call("POST", "/api/v1/events", `[{"id": "native-1", "type": "api", "customer_id": "1008", "properties": {"quantity": 0.5}},
		{"id": "feb-last", "type": "api", "customer_id": "1008", "time": "2026-03-01T03:00:00Z", "properties": {"quantity": 7}},
		{"id": "mar-first", "type": "api", "customer_id": "1008", "time": "2026-03-01T05:00:00Z", "properties": {"quantity": 11}}]`, http.StatusAccepted)
	// Retries through every path change nothing.
	call("POST", "/api/v1/integration/organization/acme/usage",
		`{"usage_record_id": "123457", "customer_id": "1008", "usage_data": [{"resource": "API", "quantity": 5000}]}`, http.StatusAccepted)
	call("POST", "/api/v1/events/batch", fmt.Sprintf(`{"events": [{"transaction_id": "lago-1", "external_customer_id": "1008", "code": "api",
		"timestamp": %d, "properties": {"quantity": "250.25"}}]}`, time.Now().Unix()), http.StatusOK)

	// Lago's current usage: amount_cents equals the hand-computed figure.
	type lagoUsage struct {
		CustomerUsage struct {
			AmountCents      int64  `json:"amount_cents"`
			TotalAmountCents int64  `json:"total_amount_cents"`
			Currency         string `json:"currency"`
			ChargesUsage     []struct {
				Units       string `json:"units"`
				EventsCount int64  `json:"events_count"`
				AmountCents int64  `json:"amount_cents"`
			} `json:"charges_usage"`
		} `json:"customer_usage"`
	}
	var lago lagoUsage
	waitFor(t, func() bool {
		lago = lagoUsage{}
		mustJSON(t, call("GET", "/api/v1/customers/1008/current_usage?external_subscription_id=sub-1008", "", http.StatusOK), &lago)
		// Units, not the amount: 5250.25 units would price 950 cents too.
		cu := lago.CustomerUsage.ChargesUsage
		return len(cu) == 1 && cu[0].Units == "5250.75" && cu[0].EventsCount == 3
	}, func() string {
		return fmt.Sprintf("Lago current usage %+v, want 5250.75 units from 3 events", lago.CustomerUsage)
	})
	cu := lago.CustomerUsage
	if cu.TotalAmountCents != 950 || cu.Currency != "USD" || len(cu.ChargesUsage) != 1 ||
		cu.ChargesUsage[0].Units != "5250.75" || cu.ChargesUsage[0].EventsCount != 3 || cu.ChargesUsage[0].AmountCents != 950 {
		t.Errorf("Lago current usage %+v", cu)
	}

	// Measure over the same period reports the same quantity.
	var native struct {
		From    string `json:"from"`
		To      string `json:"to"`
		Charges []struct {
			Units       json.Number `json:"units"`
			AmountCents int64       `json:"amount_cents"`
		} `json:"charges"`
	}
	mustJSON(t, call("GET", "/api/v1/subscriptions/sub-1008/usage", "", http.StatusOK), &native)
	if len(native.Charges) != 1 || native.Charges[0].Units.String() != "5250.75" || native.Charges[0].AmountCents != 950 {
		t.Errorf("native subscription usage %+v", native)
	}
	m := decodeMeasure(t, call("POST", "/api/v1/companies/cmp_acme/subscriptions/sub-1008/usage", fmt.Sprintf(
		`{"product_metric_pricing_id": %q, "period": {"start_date": %q, "end_date": %q}}`, chargeID, native.From, native.To), http.StatusOK))
	if len(m.Usage) != 1 || !sameDecimal(m.Usage[0].Value.String(), "5250.75") {
		t.Errorf("Measure usage this month %v, want 5250.75", m.values())
	}

	// February in New York ends at 2026-03-01T05:00Z. feb-last and
	// mar-first came in native-1's request, but this month's total above
	// says nothing of them: ClickHouse makes an insert's parts (one per
	// month) and the rollups its views feed visible one at a time, not
	// together, so they are waited for like the rest.
	var feb, febMar []string
	waitFor(t, func() bool {
		m := decodeMeasure(t, call("POST", "/api/v1/companies/acme/subscriptions/sub-1008/usage", fmt.Sprintf(
			`{"product_metric_pricing_id": %q, "period": {"start_date": "2026-02-01T05:00:00Z", "end_date": "2026-03-31T04:00:00Z"}}`, chargeID), http.StatusOK))
		febMar = m.values()
		if len(m.Usage) != 2 || !sameDecimal(m.Usage[0].Value.String(), "7") || !sameDecimal(m.Usage[1].Value.String(), "11") {
			return false
		}
		mustJSON(t, call("GET", "/api/v1/subscriptions/sub-1008/usage?from=2026-02-01T05:00:00Z&to=2026-03-01T05:00:00Z", "", http.StatusOK), &native)
		feb = nil
		for _, c := range native.Charges {
			feb = append(feb, c.Units.String())
		}
		return len(feb) == 1 && feb[0] == "7"
	}, func() string {
		return fmt.Sprintf("Measure February and March %v, want 7 then 11; native February units %v, want [7]", febMar, feb)
	})
}

func mustJSON(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}

// waitPastMonthEnd waits when the test would straddle the end of a month
// in zone: events sent "now" must land in the period the test reads.
func waitPastMonthEnd(t *testing.T, zone string) {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().In(loc)
	next := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, loc)
	if wait := next.Sub(now); wait < 3*time.Minute {
		t.Logf("waiting %s for the month to end in %s", wait.Round(time.Second), zone)
		time.Sleep(wait + time.Second)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/query/lago"
	"github.com/tally-oss/tally/query/rating"
	"github.com/tally-oss/tally/schemas"
)

// lagoSeedFields are the fields of customer_usage in Lago's documentation
// (../shared/seeds/lago-current-usage-api.txt).
var lagoSeedFields = []string{"amount_cents", "charges_usage", "currency", "from_datetime", "issuing_date",
	"lago_invoice_id", "taxes_amount_cents", "to_datetime", "total_amount_cents"}

// TestLagoContract runs a Lago integration against the whole pipeline on
// the one base URL: the catalog as Lago would create it (wrapped bodies),
// events in Lago's batch and single formats (a batch sent twice) plus one
// native event, then Lago's current_usage, compared with a hand-computed
// answer (billable_metric.code is the meter's event_type, the code the
// events carry):
//
//	api_calls: 100.5 + 200 + 100 + 99.7 tokens = 500.2 × 0.015 EUR = 7.503 -> 7.50 EUR = 750
//	storage:   8 GB eu + 7 GB us = 15 GB graduated: 10 × 1 + 5 × 0.5 + 2 flat = 14.50 EUR = 1450,
//	           eu 8/15 -> 773, us 7/15 -> 677 (largest remainder)
//	amount_cents = total_amount_cents = 750 + 1450 = 2200 (the fixed fee is not current usage)
func TestLagoContract(t *testing.T) {
	p := startPipeline(t)
	api := p.apiURL
	call := func(method, path, key string, body string, want int) []byte {
		t.Helper()
		return p.mustAPI(key, method, path, body, want)
	}

	// The meters are the billable metrics: a Lago event's code is the
	// meter's event type, which differs from the key here, and
	// current_usage reports it as the billable metric's code.
	call("POST", "/api/v1/meters", acmeKey, `{"key": "api_calls", "name": "API calls", "event_type": "api.call", "aggregation": "SUM", "value_property": "$.tokens"}`, http.StatusCreated)
	call("POST", "/api/v1/meters", acmeKey, `{"key": "storage", "name": "Storage", "event_type": "storage.gb", "aggregation": "SUM", "value_property": "$.gb", "group_by": {"region": "$.region"}}`, http.StatusCreated)
	call("POST", "/api/v1/customers", acmeKey, `{"customer": {"external_id": "cust_lago", "name": "Lago customer", "currency": "EUR"}}`, http.StatusCreated)
	var plan schemas.Plan
	if err := json.Unmarshal(call("POST", "/api/v1/plans", acmeKey, `{"plan": {"code": "startup", "name": "Startup", "interval": "monthly",
		"amount_cents": 1000, "amount_currency": "EUR", "charges": [
		{"meter": "api_calls", "charge_model": "standard", "properties": {"amount": "0.015"}, "invoice_display_name": "API calls"},
		{"meter": "storage", "charge_model": "graduated", "properties": {"graduated_ranges": [
			{"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"},
			{"from_value": 11, "to_value": null, "per_unit_amount": "0.5", "flat_amount": "2"}]}}]}}`, http.StatusCreated), &plan); err != nil {
		t.Fatal(err)
	}
	// Anniversary billing from an hour ago: the current period surely
	// holds the events, whatever the day the test runs.
	now := time.Now().UTC()
	subAt := now.Add(-time.Hour).Truncate(time.Second)
	call("POST", "/api/v1/subscriptions", acmeKey, fmt.Sprintf(`{"subscription": {"external_id": "sub_lago", "external_customer_id": "cust_lago",
		"plan_code": "startup", "billing_time": "anniversary", "subscription_at": %q}}`, subAt.Format(time.RFC3339)), http.StatusCreated)

	at := func(d time.Duration) int64 { return now.Add(-d).Unix() }
	batch := fmt.Sprintf(`{"events": [
		{"transaction_id": "tr_1", "external_subscription_id": "sub_lago", "code": "api.call", "timestamp": %d, "properties": {"tokens": 100.5}},
		{"transaction_id": "tr_2", "external_subscription_id": "sub_lago", "code": "api.call", "timestamp": "%d.5", "properties": {"tokens": "200"}},
		{"transaction_id": "tr_3", "external_subscription_id": "sub_lago", "code": "storage.gb", "timestamp": %d, "properties": {"gb": 5, "region": "eu"}},
		{"transaction_id": "tr_4", "external_subscription_id": "sub_lago", "code": "storage.gb", "timestamp": %d, "properties": {"gb": 3, "region": "eu"}}
	]}`, at(50*time.Minute), at(40*time.Minute), at(30*time.Minute), at(20*time.Minute))
	resp := call("POST", "/api/v1/events/batch", acmeKey, batch, http.StatusOK)
	var echoed struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal(resp, &echoed); err != nil || len(echoed.Events) != 4 || echoed.Events[1]["external_customer_id"] != "cust_lago" {
		t.Fatalf("batch response %s", resp)
	}
	call("POST", "/api/v1/events/batch", acmeKey, batch, http.StatusOK) // a retry counts once
	resp = call("POST", "/api/v1/events", acmeKey, fmt.Sprintf(`{"event": {"transaction_id": "tr_5", "external_customer_id": "cust_lago",
		"code": "api.call", "timestamp": %d, "properties": {"tokens": 100}}}`, at(10*time.Minute)), http.StatusOK)
	if !bytes.Contains(resp, []byte(`"transaction_id":"tr_5"`)) || !bytes.Contains(resp, []byte(`{"event":{"lago_id":`)) {
		t.Fatalf("single event response %s", resp)
	}
	call("POST", "/api/v1/events", acmeKey, fmt.Sprintf(`{"event": {"transaction_id": "tr_6", "external_subscription_id": "sub_lago",
		"code": "storage.gb", "timestamp": %d, "properties": {"gb": 7, "region": "us"}}}`, at(5*time.Minute)), http.StatusOK)
	// Tally's own event for the same customer counts on the same charges.
	code, _ := p.do("POST", api+"/api/v1/events", acmeKey, "application/json",
		[]byte(fmt.Sprintf(`{"id": "native_1", "type": "api.call", "customer_id": "cust_lago", "time": %q, "properties": {"tokens": "99.7"}}`,
			now.Add(-2*time.Minute).Format(time.RFC3339))))
	if code != http.StatusAccepted {
		t.Fatalf("native event: %d", code)
	}
	// Globex sends the same transaction ids for its own customer.
	call("POST", "/api/v1/events/batch", globexKey, strings.ReplaceAll(strings.ReplaceAll(batch, "external_subscription_id", "external_customer_id"), "sub_lago", "cust_lago"), http.StatusOK)

	// Every event of acme's cust_lago has one record key, so one partition
	// and order: once the native event (sent last) counts, the retried
	// batch before it has been read too, and 2200 proves it counted once.
	path := "/api/v1/customers/cust_lago/current_usage?external_subscription_id=sub_lago"
	var body []byte
	waitFor(t, func() bool {
		var code int
		code, body = p.do("GET", api+path, acmeKey, "", nil)
		return code == http.StatusOK && bytes.Contains(body, []byte(`"amount_cents":2200,`))
	}, func() string { return fmt.Sprintf("current usage never reached 2200 cents: %s", body) })

	// Every field of the seed, and no other.
	var top struct {
		CustomerUsage map[string]json.RawMessage `json:"customer_usage"`
	}
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(top.CustomerUsage)); !slices.Equal(got, lagoSeedFields) {
		t.Errorf("customer_usage fields %v, want the seed's %v", got, lagoSeedFields)
	}

	period := rating.PeriodAt(schemas.Subscription{SubscriptionAt: subAt, BillingTime: schemas.BillingAnniversary}, schemas.IntervalMonthly, time.UTC, now)
	last := period.To.Add(-time.Second)
	want := `{"customer_usage":{"from_datetime":"` + subAt.Format(time.RFC3339) + `","to_datetime":"` + last.Format(time.RFC3339) + `",` +
		`"issuing_date":"` + last.AddDate(0, 0, 1).Format(time.RFC3339) + `","currency":"EUR","amount_cents":2200,"taxes_amount_cents":0,` +
		`"total_amount_cents":2200,"lago_invoice_id":null,"charges_usage":[` +
		`{"units":"500.2","events_count":4,"amount_cents":750,"amount_currency":"EUR",` +
		`"charge":{"lago_id":"` + plan.Charges[0].ID + `","charge_model":"standard","invoice_display_name":"API calls"},` +
		`"billable_metric":{"lago_id":"` + lago.MetricID("acme", "api_calls") + `","name":"API calls","code":"api.call","aggregation_type":"sum_agg"},` +
		`"filters":[],"grouped_usage":[]},` +
		`{"units":"15","events_count":3,"amount_cents":1450,"amount_currency":"EUR",` +
		`"charge":{"lago_id":"` + plan.Charges[1].ID + `","charge_model":"graduated","invoice_display_name":null},` +
		`"billable_metric":{"lago_id":"` + lago.MetricID("acme", "storage") + `","name":"Storage","code":"storage.gb","aggregation_type":"sum_agg"},` +
		`"filters":[],"grouped_usage":[` +
		`{"amount_cents":773,"events_count":2,"units":"8","grouped_by":{"region":"eu"},"filters":[]},` +
		`{"amount_cents":677,"events_count":1,"units":"7","grouped_by":{"region":"us"},"filters":[]}]}]}}`
	if got := strings.TrimSpace(string(body)); got != want {
		t.Errorf("current usage\n got %s\nwant %s", got, want)
	}

	// Lago's errors, and isolation: globex cannot see acme's customer.
	for _, tt := range []struct {
		key, path string
		want      int
		body      string
	}{
		{acmeKey, "/api/v1/customers/nobody/current_usage?external_subscription_id=sub_lago", 404, `{"status":404,"error":"Not Found","code":"customer_not_found"}`},
		{acmeKey, "/api/v1/customers/cust_lago/current_usage?external_subscription_id=nothing", 404, `{"status":404,"error":"Not Found","code":"subscription_not_found"}`},
		{acmeKey, "/api/v1/customers/cust_lago/current_usage", 422, `"error_details":{"external_subscription_id":["value_is_mandatory"]}`},
		{globexKey, path, 404, `{"status":404,"error":"Not Found","code":"customer_not_found"}`},
	} {
		code, body := p.do("GET", api+tt.path, tt.key, "", nil)
		if code != tt.want || !strings.Contains(string(body), tt.body) {
			t.Errorf("GET %s: %d %s, want %d with %s", tt.path, code, body, tt.want, tt.body)
		}
	}
	code, resp = p.do("POST", api+"/api/v1/events/batch", acmeKey, "application/json", []byte(`{"events": [{"transaction_id": "x", "external_subscription_id": "nothing", "code": "api.call"}]}`))
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(resp), `"error_details":{"0":{"external_subscription_id":`) {
		t.Errorf("event of an unknown subscription: %d %s", code, resp)
	}
}

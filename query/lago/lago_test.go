package lago

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/query/billing"
	"github.com/tally-oss/tally/query/usage"
	"github.com/tally-oss/tally/schemas"
)

const (
	acmeKey   = "acme-key-0123456789"
	globexKey = "globex-key-0123456789"
)

// lagoEnv serves Lago's routes on a private ClickHouse database, with the
// catalog and meters in their real stores and readings inserted as the
// aggregator writes them.
type lagoEnv struct {
	t       *testing.T
	conn    driver.Conn
	meters  *meterstore.Store
	catalog *catalogstore.Store
	url     string
}

func newLagoEnv(t *testing.T, now time.Time) *lagoEnv {
	t.Helper()
	conn := testenv.MigratedDatabase(t)
	e := &lagoEnv{t: t, conn: conn, meters: meterstore.New(conn), catalog: catalogstore.New(conn)}
	usageSvc := usage.NewService(e.meters, usage.NewClickHouseReader(conn, 10_000, nil), meterstore.ErrNotFound)
	bill := billing.New(e.catalog, usageSvc, catalogstore.ErrNotFound, 10_000)
	bill.SetClock(func() time.Time { return now })

	mux := testenv.RoutesMux(t, "acme:"+acmeKey+",globex:"+globexKey,
		Routes(Deps{Billing: bill, Catalog: e.catalog, Timeout: 10 * time.Second}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

func (e *lagoEnv) meter(org, definition string) schemas.Meter {
	e.t.Helper()
	m, err := schemas.ParseMeter([]byte(definition))
	if err != nil {
		e.t.Fatal(err)
	}
	if m, err = e.meters.Create(context.Background(), org, m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *lagoEnv) customer(org, definition string) {
	e.t.Helper()
	c, err := schemas.ParseCustomer([]byte(definition))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, _, err := e.catalog.PutCustomer(context.Background(), org, c); err != nil {
		e.t.Fatal(err)
	}
}

func (e *lagoEnv) plan(org, definition string) schemas.Plan {
	e.t.Helper()
	p, err := schemas.ParsePlan([]byte(definition))
	if err != nil {
		e.t.Fatal(err)
	}
	if p, err = e.catalog.CreatePlan(context.Background(), org, p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *lagoEnv) subscription(org, definition string) {
	e.t.Helper()
	s, err := schemas.ParseSubscription([]byte(definition))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.catalog.CreateSubscription(context.Background(), org, s); err != nil {
		e.t.Fatal(err)
	}
}

// reading is one row of the readings table.
type reading struct {
	org      string
	meter    schemas.Meter
	customer string
	id       string
	at       string // RFC 3339
	value    string
	groups   map[string]string
}

// insert writes readings with testenv.InsertReadings, exactly as the
// aggregator does.
func (e *lagoEnv) insert(rows ...reading) {
	e.t.Helper()
	out := make([]testenv.Reading, len(rows))
	for i, r := range rows {
		at, err := time.Parse(time.RFC3339Nano, r.at)
		if err != nil {
			e.t.Fatal(err)
		}
		out[i] = testenv.Reading{Org: r.org, Meter: r.meter.Key, Revision: r.meter.Revision, Customer: r.customer, EventID: r.id,
			Time: at, Value: r.value, Groups: r.groups}
	}
	testenv.InsertReadings(e.t, e.conn, out...)
}

func (e *lagoEnv) get(key, customer, query string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+"/api/v1/customers/"+customer+"/current_usage"+query, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

const (
	apiCallsMeter = `{"key": "api_calls", "name": "API calls", "event_type": "api_call", "aggregation": "SUM", "value_property": "$.tokens"}`
	storageMeter  = `{"key": "storage", "event_type": "storage", "aggregation": "SUM", "value_property": "$.gb", "group_by": {"region": "$.region"}}`
	proPlan       = `{"code": "pro", "name": "Pro", "interval": "monthly", "amount_cents": 1000, "amount_currency": "EUR", "charges": [
		{"meter": "api_calls", "charge_model": "standard", "properties": {"amount": "0.015"}, "invoice_display_name": "API calls"},
		{"meter": "storage", "charge_model": "graduated", "properties": {"graduated_ranges": [
			{"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"},
			{"from_value": 10, "to_value": null, "per_unit_amount": "0.5", "flat_amount": "2"}]}}]}`
)

// TestCurrentUsage prices a New York subscription's March on real
// ClickHouse and compares the whole answer with a hand-computed one:
//
//	api_calls: 100.5 + 200 + 100 tokens = 400.5 × 0.015 EUR = 6.0075 -> 6.01 EUR = 601
//	storage:   8 GB eu + 7 GB us = 15 GB, graduated: 10 × 1 + 5 × 0.5 + 2 flat = 14.50 EUR = 1450,
//	           split by units: eu 8/15 = 773.33 -> 773, us 7/15 = 676.67 -> 677 (largest remainder)
//	amount_cents = 601 + 1450 = 2051 (the 1000 fixed fee is not current usage, as in Lago)
//
// Readings outside March in New York (2026-03-01T05:00Z to 2026-04-01T04:00Z),
// of another customer, or of another organization do not count.
func TestCurrentUsage(t *testing.T) {
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	e := newLagoEnv(t, now)
	apiCalls, storage := e.meter("acme", apiCallsMeter), e.meter("acme", storageMeter)
	e.customer("acme", `{"external_id": "cust-1", "name": "One", "currency": "EUR", "timezone": "America/New_York"}`)
	e.customer("acme", `{"external_id": "cust-2"}`)
	plan := e.plan("acme", proPlan)
	e.subscription("acme", `{"external_id": "sub-1", "external_customer_id": "cust-1", "plan_code": "pro", "subscription_at": "2026-01-10T00:00:00Z", "timezone": "America/New_York"}`)
	e.subscription("acme", `{"external_id": "sub-2", "external_customer_id": "cust-2", "plan_code": "pro", "subscription_at": "2026-01-10T00:00:00Z"}`)
	e.subscription("acme", `{"external_id": "sub-ghost", "external_customer_id": "ghost", "plan_code": "pro", "subscription_at": "2026-01-10T00:00:00Z"}`)
	e.subscription("acme", `{"external_id": "sub-later", "external_customer_id": "cust-1", "plan_code": "pro", "subscription_at": "2026-06-01T00:00:00Z"}`)
	e.insert(
		reading{"acme", apiCalls, "cust-1", "a1", "2026-03-01T05:00:00Z", "100.5", nil}, // March's first instant in New York
		reading{"acme", apiCalls, "cust-1", "a2", "2026-03-10T00:00:00Z", "200", nil},
		reading{"acme", apiCalls, "cust-1", "a3", "2026-04-01T03:59:59.999Z", "100", nil}, // its last millisecond
		reading{"acme", apiCalls, "cust-1", "x1", "2026-03-01T04:59:59Z", "1000", nil},    // February in New York
		reading{"acme", apiCalls, "cust-1", "x2", "2026-04-01T04:00:00Z", "1000", nil},    // April
		reading{"acme", apiCalls, "cust-2", "x3", "2026-03-05T00:00:00Z", "1000", nil},    // another customer
		reading{"acme", storage, "cust-1", "s1", "2026-03-02T00:00:00Z", "5", map[string]string{"region": "eu"}},
		reading{"acme", storage, "cust-1", "s2", "2026-03-03T00:00:00Z", "3", map[string]string{"region": "eu"}},
		reading{"acme", storage, "cust-1", "s3", "2026-03-04T00:00:00Z", "7", map[string]string{"region": "us"}},
		reading{"acme", storage, "cust-1", "x4", "2026-02-20T00:00:00Z", "100", map[string]string{"region": "eu"}},
	)
	// globex has the same ids, its own meter, plan and readings.
	globexCalls := e.meter("globex", apiCallsMeter)
	e.meter("globex", storageMeter)
	e.customer("globex", `{"external_id": "cust-1"}`)
	e.plan("globex", proPlan)
	e.subscription("globex", `{"external_id": "sub-1", "external_customer_id": "cust-1", "plan_code": "pro", "subscription_at": "2026-01-10T00:00:00Z", "timezone": "America/New_York"}`)
	e.insert(reading{"globex", globexCalls, "cust-1", "a1", "2026-03-05T00:00:00Z", "5000", nil})

	code, body := e.get(acmeKey, "cust-1", "?external_subscription_id=sub-1")
	want := `{"customer_usage":{"from_datetime":"2026-03-01T05:00:00Z","to_datetime":"2026-04-01T03:59:59Z","issuing_date":"2026-04-02T03:59:59Z",` +
		`"currency":"EUR","amount_cents":2051,"taxes_amount_cents":0,"total_amount_cents":2051,"lago_invoice_id":null,"charges_usage":[` +
		`{"units":"400.5","events_count":3,"amount_cents":601,"amount_currency":"EUR",` +
		`"charge":{"lago_id":"` + plan.Charges[0].ID + `","charge_model":"standard","invoice_display_name":"API calls"},` +
		`"billable_metric":{"lago_id":"` + MetricID("acme", "api_calls") + `","name":"API calls","code":"api_call","aggregation_type":"sum_agg"},` +
		`"filters":[],"grouped_usage":[]},` +
		`{"units":"15","events_count":3,"amount_cents":1450,"amount_currency":"EUR",` +
		`"charge":{"lago_id":"` + plan.Charges[1].ID + `","charge_model":"graduated","invoice_display_name":null},` +
		`"billable_metric":{"lago_id":"` + MetricID("acme", "storage") + `","name":"storage","code":"storage","aggregation_type":"sum_agg"},` +
		`"filters":[],"grouped_usage":[` +
		`{"amount_cents":773,"events_count":2,"units":"8","grouped_by":{"region":"eu"},"filters":[]},` +
		`{"amount_cents":677,"events_count":1,"units":"7","grouped_by":{"region":"us"},"filters":[]}]}]}}`
	if code != http.StatusOK || body != want {
		t.Errorf("current usage: %d\n got %s\nwant %s", code, body, want)
	}

	// The same path with globex's key is globex's subscription.
	code, body = e.get(globexKey, "cust-1", "?external_subscription_id=sub-1")
	if code != http.StatusOK || !strings.Contains(body, `"amount_cents":7500,`) || !strings.Contains(body, `"units":"5000"`) {
		t.Errorf("globex: %d %s", code, body)
	}

	tests := []struct {
		name, key, customer, query string
		wantCode                   int
		wantBody                   string
	}{
		{"a customer the catalog lacks, named by its subscription", acmeKey, "ghost", "?external_subscription_id=sub-ghost", 200, `"amount_cents":0,`},
		{"subscription required", acmeKey, "cust-1", "", 422,
			`{"status":422,"error":"Unprocessable Entity","code":"validation_errors","error_details":{"external_subscription_id":["value_is_mandatory"]}}`},
		{"subscription empty", acmeKey, "cust-1", "?external_subscription_id=", 422, `"external_subscription_id":["value_is_mandatory"]`},
		{"unknown customer and subscription", acmeKey, "nobody", "?external_subscription_id=nothing", 404, `{"status":404,"error":"Not Found","code":"customer_not_found"}`},
		{"unknown customer, known subscription", acmeKey, "nobody", "?external_subscription_id=sub-1", 404, `{"status":404,"error":"Not Found","code":"customer_not_found"}`},
		{"known customer, unknown subscription", acmeKey, "cust-1", "?external_subscription_id=nothing", 404, `{"status":404,"error":"Not Found","code":"subscription_not_found"}`},
		{"another customer's subscription", acmeKey, "cust-1", "?external_subscription_id=sub-2", 404, `{"status":404,"error":"Not Found","code":"subscription_not_found"}`},
		{"a subscription not started", acmeKey, "cust-1", "?external_subscription_id=sub-later", 405, `{"status":405,"error":"Method Not Allowed","code":"no_active_subscription"}`},
		{"another organization's customer", globexKey, "cust-2", "?external_subscription_id=sub-2", 404, `{"status":404,"error":"Not Found","code":"customer_not_found"}`},
		{"another organization's subscription", globexKey, "ghost", "?external_subscription_id=sub-ghost", 404, `"code":"customer_not_found"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e.get(tt.key, tt.customer, tt.query)
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Errorf("%d %s, want %d with %s", code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

// TestCurrentUsageAfterTermination: a terminated subscription has no
// current usage in Lago.
func TestCurrentUsageAfterTermination(t *testing.T) {
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	e := newLagoEnv(t, now)
	e.meter("acme", apiCallsMeter)
	e.meter("acme", storageMeter)
	e.plan("acme", proPlan)
	e.subscription("acme", `{"external_id": "sub-1", "external_customer_id": "cust-1", "plan_code": "pro", "subscription_at": "2026-01-10T00:00:00Z"}`)
	if _, err := e.catalog.TerminateSubscription(context.Background(), "acme", "sub-1", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	code, body := e.get(acmeKey, "cust-1", "?external_subscription_id=sub-1")
	if code != http.StatusMethodNotAllowed || body != `{"status":405,"error":"Method Not Allowed","code":"no_active_subscription"}` {
		t.Errorf("%d %s", code, body)
	}
	// No API key: Tally's 401 before any Lago route runs.
	resp, err := http.Get(e.url + "/api/v1/customers/cust-1/current_usage?external_subscription_id=sub-1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a key: %d", resp.StatusCode)
	}
}

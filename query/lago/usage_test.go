package lago

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/query/billing"
	"github.com/tally-oss/tally/query/rating"
	"github.com/tally-oss/tally/schemas"
)

// TestCustomerUsageShape maps a priced period onto Lago's object and
// compares the whole JSON: every field of Lago's documentation, in its
// shape, with the period's last second and the issuing date a day later.
// A billable metric's code is its meter's event_type (what a Lago event
// carries as code to be metered), its name the meter's name. The groups
// of a charge split over them have their share as amount_cents; those of
// a charge that is not (a MAX meter) have 0.
func TestCustomerUsageShape(t *testing.T) {
	money := func(minor int64) rating.Money { return rating.Money{Amount: decimal.New(minor, -2), Minor: minor} }
	u := billing.Usage{
		Subscription: billing.Subscription{Meters: map[string]schemas.Meter{
			"api_calls": {Key: "api_calls", Name: "API calls", EventType: "api.call", Aggregation: schemas.AggSum, GroupBy: map[string]string{"model": "$.model"}},
			"storage":   {Key: "storage", EventType: "storage", Aggregation: schemas.AggMax},
		}},
		Invoice: rating.Invoice{
			Period:   rating.Period{From: time.Date(2022, 7, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2022, 8, 1, 0, 0, 0, 0, time.UTC)},
			Currency: "EUR",
			Charges: []rating.ChargeLine{
				{
					Charge: schemas.Charge{ID: "ch_1", Meter: "api_calls", ChargeModel: schemas.ChargeStandard, InvoiceDisplayName: "Calls"},
					Units:  decimal.RequireFromString("12.5"), Events: 3, Amount: money(25), GroupAmounts: true,
					Groups: []rating.GroupLine{
						{Values: map[string]string{"model": "a"}, Units: decimal.RequireFromString("10"), Events: 2, Amount: money(20)},
						{Values: map[string]string{"model": "b"}, Units: decimal.RequireFromString("2.5"), Events: 1, Amount: money(5)}},
				},
				{
					Charge: schemas.Charge{ID: "ch_2", Meter: "storage", ChargeModel: schemas.ChargeGraduated},
					Units:  decimal.NewFromInt(7), Events: 2, Amount: money(98),
					Groups: []rating.GroupLine{{Values: map[string]string{"region": "eu"}, Units: decimal.NewFromInt(7), Events: 2, Amount: money(98)}},
				},
				{Charge: schemas.Charge{ID: "ch_3", Meter: "deleted", ChargeModel: schemas.ChargePackage}, Units: decimal.Zero, Amount: money(0)},
			},
			ChargesTotal: money(123),
			FixedFee:     money(1000),
			Total:        money(1123),
		},
	}
	got, err := json.Marshal(customerUsage("acme", u))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"from_datetime":"2022-07-01T00:00:00Z","to_datetime":"2022-07-31T23:59:59Z","issuing_date":"2022-08-01T23:59:59Z",` +
		`"currency":"EUR","amount_cents":123,"taxes_amount_cents":0,"total_amount_cents":123,"lago_invoice_id":null,"charges_usage":[` +
		`{"units":"12.5","events_count":3,"amount_cents":25,"amount_currency":"EUR",` +
		`"charge":{"lago_id":"ch_1","charge_model":"standard","invoice_display_name":"Calls"},` +
		`"billable_metric":{"lago_id":"` + MetricID("acme", "api_calls") + `","name":"API calls","code":"api.call","aggregation_type":"sum_agg"},` +
		`"filters":[],"grouped_usage":[{"amount_cents":20,"events_count":2,"units":"10","grouped_by":{"model":"a"},"filters":[]},` +
		`{"amount_cents":5,"events_count":1,"units":"2.5","grouped_by":{"model":"b"},"filters":[]}]},` +
		`{"units":"7","events_count":2,"amount_cents":98,"amount_currency":"EUR",` +
		`"charge":{"lago_id":"ch_2","charge_model":"graduated","invoice_display_name":null},` +
		`"billable_metric":{"lago_id":"` + MetricID("acme", "storage") + `","name":"storage","code":"storage","aggregation_type":"max_agg"},` +
		`"filters":[],"grouped_usage":[{"amount_cents":0,"events_count":2,"units":"7","grouped_by":{"region":"eu"},"filters":[]}]},` +
		`{"units":"0","events_count":0,"amount_cents":0,"amount_currency":"EUR",` +
		`"charge":{"lago_id":"ch_3","charge_model":"package","invoice_display_name":null},` +
		`"billable_metric":{"lago_id":"` + MetricID("acme", "deleted") + `","name":"deleted","code":"deleted","aggregation_type":""},` +
		`"filters":[],"grouped_usage":[]}]}`
	if string(got) != want {
		t.Errorf("customer_usage\n got %s\nwant %s", got, want)
	}
}

func TestPeriodBounds(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name             string
		period           rating.Period
		from, to, issued string
	}{
		{
			name:   "calendar month in UTC",
			period: rating.Period{From: time.Date(2022, 7, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2022, 8, 1, 0, 0, 0, 0, time.UTC)},
			from:   "2022-07-01T00:00:00Z", to: "2022-07-31T23:59:59Z", issued: "2022-08-01T23:59:59Z",
		},
		{
			name:   "New York month across the DST change, shown in UTC",
			period: rating.Period{From: time.Date(2026, 3, 1, 0, 0, 0, 0, ny), To: time.Date(2026, 4, 1, 0, 0, 0, 0, ny)},
			from:   "2026-03-01T05:00:00Z", to: "2026-04-01T03:59:59Z", issued: "2026-04-02T03:59:59Z",
		},
		{
			name:   "fractional start and end (a subscription that began mid-second)",
			period: rating.Period{From: time.Date(2026, 1, 10, 8, 30, 15, 500, time.UTC), To: time.Date(2026, 2, 1, 0, 0, 0, 250, time.UTC)},
			from:   "2026-01-10T08:30:15Z", to: "2026-01-31T23:59:59Z", issued: "2026-02-01T23:59:59Z",
		},
	}
	for _, tt := range tests {
		u := customerUsage("acme", billing.Usage{Invoice: rating.Invoice{Period: tt.period, Currency: "USD"}})
		if u.FromDatetime != tt.from || u.ToDatetime != tt.to || u.IssuingDate != tt.issued {
			t.Errorf("%s: %s .. %s issued %s, want %s .. %s issued %s", tt.name, u.FromDatetime, u.ToDatetime, u.IssuingDate, tt.from, tt.to, tt.issued)
		}
		if u.ChargesUsage == nil {
			t.Errorf("%s: charges_usage is null, want []", tt.name)
		}
	}
}

func TestMetricID(t *testing.T) {
	id := MetricID("acme", "api_calls")
	if id != MetricID("acme", "api_calls") || id == MetricID("globex", "api_calls") || id == MetricID("acme", "API_calls") {
		t.Errorf("MetricID is not stable per (org, key): %s", id)
	}
	if len(id) != 36 || id[14] != '5' {
		t.Errorf("MetricID %s is not a version 5 UUID", id)
	}
}

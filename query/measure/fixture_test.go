package measure

import (
	"time"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/schemas"
)

// The fixture: acme's subscription sub-1 of customer cust-1, in
// America/New_York, on plan "pro" (monthly, calendar billing) since
// 2026-02-01 00:00 New York time, with a graduated charge ch_tokens on
// the meter "tokens" (SUM of tokens, grouped by region, filtered on
// status) and a standard charge ch_calls on "calls" (COUNT). Globex has a
// subscription of the same id on its own plan and meter.
const (
	newYork        = "America/New_York"
	subscriptionAt = "2026-02-01T05:00:00Z" // 00:00 EST
	tokensDef      = `{"key": "tokens", "name": "LLM tokens", "description": "Tokens generated", "event_type": "completion",
		"aggregation": "SUM", "value_property": "tokens", "group_by": {"region": "$.region"}, "filter": {"status": {"eq": "ok"}}}`
	callsDef = `{"key": "calls", "event_type": "call", "aggregation": "COUNT"}`
)

type fixture struct {
	tokens, calls, globexTokens schemas.Meter
	plan                        schemas.Plan
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func setup(e *env) fixture {
	e.t.Helper()
	var f fixture
	f.tokens = e.meter("acme", tokensDef)
	f.calls = e.meter("acme", callsDef)
	f.globexTokens = e.meter("globex", `{"key": "tokens", "event_type": "completion", "aggregation": "SUM", "value_property": "tokens"}`)
	f.plan = e.plan("acme", schemas.Plan{
		Code: "pro", Name: "Pro", Description: "For teams", Interval: schemas.IntervalMonthly,
		AmountCents: 4900, AmountCurrency: "USD", MinimumCommitmentCents: 10000, Metadata: map[string]string{"tier": "2"},
		Charges: []schemas.Charge{
			{ID: "ch_tokens", Meter: "tokens", ChargeModel: schemas.ChargeGraduated, InvoiceDisplayName: "Tokens",
				Properties: schemas.ChargeProperties{GraduatedRanges: []schemas.Range{
					{FromValue: decimal.Zero, ToValue: dec("1000"), PerUnitAmount: decimal.RequireFromString("0.01"), FlatAmount: decimal.RequireFromString("1")},
					{FromValue: decimal.RequireFromString("1000"), PerUnitAmount: decimal.RequireFromString("0.005")},
				}}},
			{ID: "ch_calls", Meter: "calls", ChargeModel: schemas.ChargeStandard,
				Properties: schemas.ChargeProperties{Amount: dec("0.1")}},
		},
	})
	e.plan("globex", schemas.Plan{
		Code: "pro", Name: "Globex Pro", Interval: schemas.IntervalMonthly, AmountCurrency: "EUR",
		Charges: []schemas.Charge{{ID: "ch_globex", Meter: "tokens", ChargeModel: schemas.ChargeStandard,
			Properties: schemas.ChargeProperties{Amount: dec("1")}}},
	})
	for _, org := range []string{"acme", "globex"} {
		e.customer(org, schemas.Customer{ExternalID: "cust-1", Timezone: newYork})
		e.subscription(org, schemas.Subscription{
			ExternalID: "sub-1", ExternalCustomerID: "cust-1", PlanCode: "pro",
			SubscriptionAt: mustTime(subscriptionAt), BillingTime: schemas.BillingCalendar, Timezone: newYork,
		})
	}
	return f
}

// tokensAt is a reading of acme's tokens meter for cust-1.
func (f fixture) tokensAt(id, at, value, region string) reading {
	return reading{org: "acme", meter: "tokens", revision: f.tokens.Revision, customer: "cust-1", eventID: id,
		time: at, value: value, groups: map[string]string{"region": region}}
}

// usageBody is a request for charge over [start, end).
func usageBody(charge, start, end string) string {
	return `{"product_metric_pricing_id": "` + charge + `", "period": {"start_date": "` + start + `", "end_date": "` + end + `"}}`
}

const acmeUsagePath = "/api/v1/companies/cmp_acme/subscriptions/sub-1/usage"

package query

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/query/billing"
	"github.com/tally-oss/tally/query/rating"
	"github.com/tally-oss/tally/schemas"
)

// TestUsageGroupAmountsJSON: the groups of a charge split over them (a
// SUM or COUNT meter) have amount and amount_cents, and the charge says
// group_amounts: true; the groups of any other charge have units and
// events only, and the charge says group_amounts: false.
func TestUsageGroupAmountsJSON(t *testing.T) {
	money := func(minor int64) rating.Money { return rating.Money{Amount: decimal.New(minor, -2), Minor: minor} }
	region := func(r string) map[string]string { return map[string]string{"region": r} }
	u := billing.Usage{
		Subscription: billing.Subscription{Location: time.UTC},
		Invoice: rating.Invoice{
			Period:   rating.Period{From: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
			Currency: "USD",
			Charges: []rating.ChargeLine{
				{Charge: schemas.Charge{ID: "sum", Meter: "tokens"}, Units: decimal.NewFromInt(10), Events: 2, Amount: money(100), GroupAmounts: true,
					Groups: []rating.GroupLine{
						{Values: region("eu"), Units: decimal.NewFromInt(7), Events: 1, Amount: money(70)},
						{Values: region("us"), Units: decimal.NewFromInt(3), Events: 1, Amount: money(30)}}},
				{Charge: schemas.Charge{ID: "latest", Meter: "seats"}, Units: decimal.NewFromInt(-5), Events: 2, Amount: money(-500),
					Groups: []rating.GroupLine{
						{Values: region("eu"), Units: decimal.NewFromInt(10), Events: 1},
						{Values: region("us"), Units: decimal.NewFromInt(-5), Events: 1}}},
			},
		},
	}
	got, err := json.Marshal(usageWithAmounts(u).Charges)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"amount":"1.00","amount_cents":100,"groups":[` +
			`{"group_by":{"region":"eu"},"units":7,"events_count":1,"amount":"0.70","amount_cents":70},` +
			`{"group_by":{"region":"us"},"units":3,"events_count":1,"amount":"0.30","amount_cents":30}],"group_amounts":true}`,
		`"amount":"-5.00","amount_cents":-500,"groups":[` +
			`{"group_by":{"region":"eu"},"units":10,"events_count":1},` +
			`{"group_by":{"region":"us"},"units":-5,"events_count":1}],"group_amounts":false}`,
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("charges\n %s\ndo not contain\n %s", got, want)
		}
	}
}

// TestSubscriptionUsageGroupsOfMax: a MAX meter's charge is priced on the
// maximum of all its readings; its groups show their own maxima and no
// amount, since the charge is not a sum of them.
func TestSubscriptionUsageGroupsOfMax(t *testing.T) {
	c := newCatalogEnv(t)
	peak := c.createMeter(keyAcme, `{"key": "peak", "event_type": "peak", "aggregation": "MAX", "value_property": "$.v", "group_by": {"region": "$.region"}}`)
	c.createPlan(keyAcme, `{"code": "p", "name": "p", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "peak", "charge_model": "standard", "properties": {"amount": "1"}}]}`)
	c.createCustomer(keyAcme, `{"external_id": "c1"}`)
	c.createSubscription(keyAcme, `{"external_id": "s1", "external_customer_id": "c1", "plan_code": "p", "subscription_at": "2026-02-01T00:00:00Z"}`)
	read := func(id, region, v string) reading {
		return reading{org: "acme", meter: peak.Key, revision: peak.Revision, customer: "c1", eventID: id,
			time: at(t, "2026-02-03T00:00:00Z"), value: v, groups: map[string]string{"region": region}}
	}
	c.insert(read("a", "eu", "5"), read("b", "us", "-3"), read("c", "us", "-4"))
	c.clock.set(at(t, "2026-02-20T00:00:00Z"))

	code, body := c.call("GET", SubscriptionsRoute+"/s1/usage", keyAcme, "")
	want := `"units":5,"events_count":3,"amount":"5.00","amount_cents":500,"groups":[` +
		`{"group_by":{"region":"eu"},"units":5,"events_count":1},{"group_by":{"region":"us"},"units":-3,"events_count":2}],` +
		`"group_amounts":false}`
	if code != http.StatusOK || !strings.Contains(string(body), want) {
		t.Errorf("usage: %d %s\nwant the charge with %s", code, body, want)
	}
}

package query

import (
	"net/http"
	"testing"
)

// TestUsageOutOfRange: a value is accepted when |v| < 10^26, but a sum of
// two such values is not within ±10^26, and ClickHouse's sum wraps around
// (to -1.6e26 here). The native usage query and the subscription's usage
// answer 422 usage_out_of_range naming the meter, never a wrong number
// or a 500; daily windows, each within range, are served exactly, and
// another customer's usage of the same meter is priced as usual.
func TestUsageOutOfRange(t *testing.T) {
	c := newCatalogEnv(t)
	_, storage := c.catalogMeters(keyAcme)
	average := c.createMeter(keyAcme, `{"key": "temperature", "event_type": "storage", "aggregation": "AVG", "value_property": "$.gb"}`)
	c.createPlan(keyAcme, `{"code": "p", "name": "p", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "storage", "charge_model": "standard", "properties": {"amount": "1"}}]}`)
	c.createCustomer(keyAcme, `{"external_id": "c1"}`)
	c.createCustomer(keyAcme, `{"external_id": "c2"}`)
	c.createSubscription(keyAcme, `{"external_id": "s1", "external_customer_id": "c1", "plan_code": "p", "subscription_at": "2026-02-01T00:00:00Z"}`)
	c.createSubscription(keyAcme, `{"external_id": "s2", "external_customer_id": "c2", "plan_code": "p", "subscription_at": "2026-02-01T00:00:00Z"}`)
	const big = "90000000000000000000000000" // 9e25, a value just inside the range
	c.insert(
		storageReading(t, storage, "acme", "c1", "big1", "2026-02-02T00:00:00Z", big),
		storageReading(t, storage, "acme", "c1", "big2", "2026-02-03T00:00:00Z", big),
		storageReading(t, storage, "acme", "c2", "small", "2026-02-03T00:00:00Z", "1.5"),
		storageReading(t, average, "acme", "c1", "big1", "2026-02-02T00:00:00Z", big),
		storageReading(t, average, "acme", "c1", "big2", "2026-02-03T00:00:00Z", big))
	c.clock.set(at(t, "2026-02-20T00:00:00Z"))

	const february = "from=2026-02-01T00:00:00Z&to=2026-03-01T00:00:00Z"
	for _, path := range []string{
		"/api/v1/meters/storage/query?" + february,
		"/api/v1/meters/storage/query?" + february + "&group_by=customer_id",
		"/api/v1/meters/temperature/query?" + february,
	} {
		code, body := c.call("GET", path, keyAcme, "")
		e := wantFieldError(t, code, body, http.StatusUnprocessableEntity, codeOutOfRange, "")
		wantMessage(t, e, "meter", "out of range", "exceeds the range Tally can represent exactly", "window_size")
	}
	code, body := c.call("GET", SubscriptionsRoute+"/s1/usage", keyAcme, "")
	e := wantFieldError(t, code, body, http.StatusUnprocessableEntity, codeOutOfRange, "")
	wantMessage(t, e, `subscription "s1"`, `meter "storage"`, "exceeds the range Tally can represent exactly")

	var daily usageBodyJSON
	c.mustCall("GET", "/api/v1/meters/storage/query?"+february+"&window_size=DAY", keyAcme, "", http.StatusOK, &daily)
	wantLines(t, "daily storage", daily.lines(),
		"2026-02-02T00:00:00Z|"+big, "2026-02-03T00:00:00Z|90000000000000000000000001.5")
	var avg usageBodyJSON
	c.mustCall("GET", "/api/v1/meters/temperature/query?"+february+"&window_size=DAY", keyAcme, "", http.StatusOK, &avg)
	wantLines(t, "daily temperature", avg.lines(), "2026-02-02T00:00:00Z|"+big, "2026-02-03T00:00:00Z|"+big)
	if u := c.usage(keyAcme, "s2", ""); u.ChargesTotal.AmountCents != 150 {
		t.Errorf("s2 (1.5 units at 1.00): charges %+v", u.ChargesTotal)
	}
}

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

// TestUsagePartOutOfRange: a total within range whose windows or groups
// are not (+9e25 twice in eu on one day, -9e25 twice in us on the next:
// 0 in all). The total and the hourly windows are served; the daily
// windows, the groups and the
// subscription's group lines are refused with 422 usage_out_of_range,
// never served as the wrapped-around numbers ClickHouse computes for them.
func TestUsagePartOutOfRange(t *testing.T) {
	c := newCatalogEnv(t)
	balance := c.createMeter(keyAcme, `{"key": "balance", "event_type": "balance", "aggregation": "SUM", "value_property": "$.v", "group_by": {"region": "$.region"}}`)
	c.createPlan(keyAcme, `{"code": "p", "name": "p", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "balance", "charge_model": "standard", "properties": {"amount": "1"}}]}`)
	c.createCustomer(keyAcme, `{"external_id": "c1"}`)
	c.createSubscription(keyAcme, `{"external_id": "s1", "external_customer_id": "c1", "plan_code": "p", "subscription_at": "2026-02-01T00:00:00Z"}`)
	const big = "90000000000000000000000000" // 9e25
	in := func(id, when, value, region string) reading {
		r := storageReading(t, balance, "acme", "c1", id, when, value)
		r.groups = map[string]string{"region": region}
		return r
	}
	c.insert(in("a", "2026-02-02T01:00:00Z", big, "eu"), in("b", "2026-02-02T02:00:00Z", big, "eu"),
		in("c", "2026-02-03T01:00:00Z", "-"+big, "us"), in("d", "2026-02-03T02:00:00Z", "-"+big, "us"))
	c.clock.set(at(t, "2026-02-20T00:00:00Z"))

	const february = "/api/v1/meters/balance/query?from=2026-02-01T00:00:00Z&to=2026-03-01T00:00:00Z"
	var total usageBodyJSON
	c.mustCall("GET", february, keyAcme, "", http.StatusOK, &total)
	wantLines(t, "total", total.lines(), "2026-02-01T00:00:00Z|0")
	var hourly usageBodyJSON // each hour holds one reading: in range
	c.mustCall("GET", february+"&window_size=HOUR", keyAcme, "", http.StatusOK, &hourly)
	if len(hourly.Data) != 4 {
		t.Errorf("hourly: %+v, want 4 windows", hourly.Data)
	}
	for _, path := range []string{february + "&window_size=DAY", february + "&group_by=region"} {
		code, body := c.call("GET", path, keyAcme, "")
		e := wantFieldError(t, code, body, http.StatusUnprocessableEntity, codeOutOfRange, "")
		wantMessage(t, e, `meter "balance"`, "exceeds the range Tally can represent exactly")
	}
	code, body := c.call("GET", SubscriptionsRoute+"/s1/usage", keyAcme, "")
	e := wantFieldError(t, code, body, http.StatusUnprocessableEntity, codeOutOfRange, "")
	wantMessage(t, e, `subscription "s1"`, `meter "balance"`, "exceeds the range Tally can represent exactly")
}

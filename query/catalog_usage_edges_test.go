package query

import (
	"net/http"
	"testing"
)

// An explicit ?from=&to= range counts only the subscription's own life:
// usage before subscription_at and after termination is not its usage.
func TestExplicitRangeClippedToSubscription(t *testing.T) {
	c := newCatalogEnv(t)
	_, storage := c.catalogMeters(keyAcme)
	c.createPlan(keyAcme, `{"code": "p", "name": "p", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "storage", "charge_model": "standard", "properties": {"amount": "1"}}]}`)
	c.createCustomer(keyAcme, `{"external_id": "c1"}`)
	c.clock.set(at(t, "2026-02-10T00:00:00Z"))
	c.createSubscription(keyAcme, `{"external_id": "s1", "external_customer_id": "c1", "plan_code": "p", "subscription_at": "2026-02-10T00:00:00Z"}`)
	c.clock.set(at(t, "2026-02-15T00:00:00Z"))
	c.mustCall("DELETE", SubscriptionsRoute+"/s1", keyAcme, "", http.StatusOK, nil)
	c.insert(
		storageReading(t, storage, "acme", "c1", "before", "2026-02-05T00:00:00Z", "100"), // before subscription_at
		storageReading(t, storage, "acme", "c1", "during", "2026-02-12T00:00:00Z", "1"),
		storageReading(t, storage, "acme", "c1", "after", "2026-02-20T00:00:00Z", "1000")) // after terminated_at
	c.clock.set(at(t, "2026-02-25T00:00:00Z"))
	cur := c.usage(keyAcme, "s1", "")
	x := c.usage(keyAcme, "s1", "?from=2026-02-01T00:00:00Z&to=2026-03-01T00:00:00Z")
	t.Logf("period=current: %s..%s units %s total %d", cur.From, cur.To, cur.Charges[0].Units, cur.Total.AmountCents)
	t.Logf("from/to Feb:   %s..%s units %s total %d", x.From, x.To, x.Charges[0].Units, x.Total.AmountCents)
	if x.Charges[0].Units != "1" {
		t.Errorf("explicit February range of a subscription active Feb 10-15 bills %s units, want 1 (only its own usage)", x.Charges[0].Units)
	}
}


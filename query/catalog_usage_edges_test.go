package query

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tally-oss/tally/schemas"
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

// TestOneSubscriptionPerMeter: usage is read per customer and meter, so two
// subscriptions of one customer that overlap in time and both charge a
// meter would each bill all of its usage. The second is refused, naming
// the plan; one that starts when the other ends, or charges other meters,
// is fine.
func TestOneSubscriptionPerMeter(t *testing.T) {
	c := newCatalogEnv(t)
	c.catalogMeters(keyAcme)
	for _, plan := range []string{
		`{"code": "base", "name": "base", "interval": "monthly", "amount_currency": "USD",
		  "charges": [{"meter": "storage", "charge_model": "standard", "properties": {"amount": "1"}}]}`,
		`{"code": "addon", "name": "addon", "interval": "monthly", "amount_currency": "USD",
		  "charges": [{"meter": "calls", "charge_model": "standard", "properties": {"amount": "1"}},
		              {"meter": "storage", "charge_model": "standard", "properties": {"amount": "2"}}]}`,
		`{"code": "calls-only", "name": "calls", "interval": "monthly", "amount_currency": "USD",
		  "charges": [{"meter": "calls", "charge_model": "standard", "properties": {"amount": "1"}}]}`,
	} {
		c.createPlan(keyAcme, plan)
	}
	c.createCustomer(keyAcme, `{"external_id": "c1"}`)
	c.createCustomer(keyAcme, `{"external_id": "c2"}`)
	c.clock.set(at(t, "2026-02-01T00:00:00Z"))
	c.createSubscription(keyAcme, `{"external_id": "s-base", "external_customer_id": "c1", "plan_code": "base",
		"subscription_at": "2026-02-01T00:00:00Z", "ending_at": "2026-04-01T00:00:00Z"}`)

	for _, tt := range []struct {
		name, body string
		want       int
	}{
		{"the same meter while the first runs", `{"external_id": "s-addon", "external_customer_id": "c1", "plan_code": "addon", "subscription_at": "2026-02-01T00:00:00Z"}`, 400},
		{"the same meter, starting later but before the first ends", `{"external_id": "s-addon", "external_customer_id": "c1", "plan_code": "addon", "subscription_at": "2026-03-31T23:59:59Z"}`, 400},
		{"the same meter, ending after the first started", `{"external_id": "s-addon", "external_customer_id": "c1", "plan_code": "addon", "subscription_at": "2026-01-01T00:00:00Z", "ending_at": "2026-02-01T00:00:01Z"}`, 400},
		{"the same plan again", `{"external_id": "s-base2", "external_customer_id": "c1", "plan_code": "base"}`, 400},
		{"the same meter from the first's end", `{"external_id": "s-next", "external_customer_id": "c1", "plan_code": "addon", "subscription_at": "2026-04-01T00:00:00Z"}`, 201},
		{"the same meter for another customer", `{"external_id": "s-c2", "external_customer_id": "c2", "plan_code": "base"}`, 201},
		{"other meters meanwhile", `{"external_id": "s-calls", "external_customer_id": "c1", "plan_code": "calls-only", "subscription_at": "2026-04-01T00:00:00Z", "ending_at": "2026-05-01T00:00:00Z"}`, 400}, // s-next charges calls from April
		{"other meters before the next one", `{"external_id": "s-calls", "external_customer_id": "c1", "plan_code": "calls-only", "subscription_at": "2026-02-01T00:00:00Z", "ending_at": "2026-04-01T00:00:00Z"}`, 201},
	} {
		code, body := c.call("POST", SubscriptionsRoute, keyAcme, tt.body)
		if code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, code, body, tt.want)
		}
		if code == 400 && !strings.Contains(string(body), `"field":"plan_code"`) {
			t.Errorf("%s: %s does not name plan_code", tt.name, body)
		}
	}

	// Terminated, the first no longer holds the meter after its end.
	c.clock.set(at(t, "2026-02-10T00:00:00Z"))
	c.mustCall("DELETE", SubscriptionsRoute+"/s-base", keyAcme, "", http.StatusOK, nil)
	if code, body := c.call("POST", SubscriptionsRoute, keyAcme, `{"external_id": "s-after", "external_customer_id": "c1", "plan_code": "base",
		"subscription_at": "2026-02-10T00:00:00Z", "ending_at": "2026-04-01T00:00:00Z"}`); code != http.StatusCreated {
		t.Errorf("after termination: %d %s", code, body)
	}
}

// TestPlanUpdateKeepsOneSubscriptionPerMeter: a plan update that makes a
// live subscription charge a meter another live subscription of the same
// customer charges is refused too.
func TestPlanUpdateKeepsOneSubscriptionPerMeter(t *testing.T) {
	c := newCatalogEnv(t)
	c.catalogMeters(keyAcme)
	c.createPlan(keyAcme, `{"code": "storage", "name": "storage", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "storage", "charge_model": "standard", "properties": {"amount": "1"}}]}`)
	c.createPlan(keyAcme, `{"code": "calls", "name": "calls", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "calls", "charge_model": "standard", "properties": {"amount": "1"}}]}`)
	c.createCustomer(keyAcme, `{"external_id": "c1"}`)
	c.createSubscription(keyAcme, `{"external_id": "s-storage", "external_customer_id": "c1", "plan_code": "storage"}`)
	c.createSubscription(keyAcme, `{"external_id": "s-calls", "external_customer_id": "c1", "plan_code": "calls"}`)
	both := `{"code": "calls", "name": "calls", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "calls", "charge_model": "standard", "properties": {"amount": "1"}},
		            {"meter": "storage", "charge_model": "standard", "properties": {"amount": "2"}}]}`
	code, body := c.call("PUT", PlansRoute+"/calls", keyAcme, both)
	if code != http.StatusBadRequest || !strings.Contains(string(body), `"field":"charges"`) || !strings.Contains(string(body), "s-storage") {
		t.Errorf("adding storage to calls: %d %s, want 400 naming charges and s-storage", code, body)
	}
	// Terminating s-storage is not enough: a plan has no versions per
	// period, so s-calls' past periods, which overlap s-storage, would be
	// repriced with storage too.
	c.mustCall("DELETE", SubscriptionsRoute+"/s-storage", keyAcme, "", http.StatusOK, nil)
	if code, body := c.call("PUT", PlansRoute+"/calls", keyAcme, both); code != http.StatusBadRequest ||
		!strings.Contains(string(body), "a new code") {
		t.Errorf("once s-storage is terminated: %d %s, want 400 pointing to a new plan code", code, body)
	}
	// Another customer's subscription is no obstacle.
	c.createCustomer(keyAcme, `{"external_id": "c2"}`)
	c.createPlan(keyAcme, `{"code": "calls2", "name": "calls2", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "calls", "charge_model": "standard", "properties": {"amount": "1"}}]}`)
	c.createSubscription(keyAcme, `{"external_id": "s-c2", "external_customer_id": "c2", "plan_code": "calls2"}`)
	if code, body := c.call("PUT", PlansRoute+"/calls2", keyAcme, strings.Replace(both, `"code": "calls"`, `"code": "calls2"`, 1)); code != http.StatusOK {
		t.Errorf("adding storage to calls2: %d %s", code, body)
	}
}

// TestGroupsOverRowLimit: a meter with more groups than the row limit
// still prices its charge, on the total, and says its groups are left out;
// it is not a failure (a 503 would be retried forever).
func TestGroupsOverRowLimit(t *testing.T) {
	c := newCatalogEnvRows(t, 2)
	callsMeter, _ := c.catalogMeters(keyAcme)
	c.createPlan(keyAcme, `{"code": "p", "name": "p", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "calls", "charge_model": "standard", "properties": {"amount": "1"}}]}`)
	c.createCustomer(keyAcme, `{"external_id": "c1"}`)
	c.createSubscription(keyAcme, `{"external_id": "s1", "external_customer_id": "c1", "plan_code": "p", "subscription_at": "2026-02-01T00:00:00Z"}`)
	for _, region := range []string{"eu", "us", "ap"} {
		c.insert(calls(t, callsMeter, "acme", "c1", region, "2026-02-02T00:00:00Z", 1)...)
	}
	c.clock.set(at(t, "2026-02-20T00:00:00Z"))
	code, body := c.call("GET", SubscriptionsRoute+"/s1/usage", keyAcme, "")
	if code != http.StatusOK || !strings.Contains(string(body), `"units":3,"events_count":3,"amount":"3.00","amount_cents":300,"groups":[],"groups_omitted":true`) {
		t.Errorf("3 groups over a 2-row limit: %d %s, want the charge of 3 calls priced with its groups omitted", code, body)
	}
}

// TestGroupRowsSharedByCharges: the row limit bounds the group lines of
// the whole response, not of each charge: with a limit of 2, the first of
// five grouped charges lists its 2 groups, the others omit theirs, and
// every charge is priced on its total.
func TestGroupRowsSharedByCharges(t *testing.T) {
	c := newCatalogEnvRows(t, 2)
	callsMeter, _ := c.catalogMeters(keyAcme)
	charges := strings.Repeat(`{"meter": "calls", "charge_model": "standard", "properties": {"amount": "1"}},`, 5)
	c.createPlan(keyAcme, `{"code": "p", "name": "p", "interval": "monthly", "amount_currency": "USD",
		"charges": [`+strings.TrimSuffix(charges, ",")+`]}`)
	c.createCustomer(keyAcme, `{"external_id": "c1"}`)
	c.createSubscription(keyAcme, `{"external_id": "s1", "external_customer_id": "c1", "plan_code": "p", "subscription_at": "2026-02-01T00:00:00Z"}`)
	for _, region := range []string{"eu", "us"} {
		c.insert(calls(t, callsMeter, "acme", "c1", region, "2026-02-02T00:00:00Z", 1)...)
	}
	c.clock.set(at(t, "2026-02-20T00:00:00Z"))
	code, body := c.call("GET", SubscriptionsRoute+"/s1/usage", keyAcme, "")
	if code != http.StatusOK {
		t.Fatalf("usage: %d %s", code, body)
	}
	var u struct {
		Charges []struct {
			AmountCents   int64             `json:"amount_cents"`
			Groups        []json.RawMessage `json:"groups"`
			GroupsOmitted bool              `json:"groups_omitted"`
		} `json:"charges"`
	}
	decodeJSON(t, body, &u)
	if len(u.Charges) != 5 {
		t.Fatalf("%d charges: %s", len(u.Charges), body)
	}
	for i, ch := range u.Charges {
		if wantOmitted := i > 0; ch.GroupsOmitted != wantOmitted || (!wantOmitted && len(ch.Groups) != 2) ||
			(wantOmitted && len(ch.Groups) != 0) || ch.AmountCents != 200 {
			t.Errorf("charge %d: %d groups, omitted %v, %d cents; want the first with 2 groups, the rest omitted, each 200 cents",
				i, len(ch.Groups), ch.GroupsOmitted, ch.AmountCents)
		}
	}
}

// TestDeleteChargedMeter: a meter that a plan charges cannot be deleted:
// the charge would silently price zero units from then on.
func TestDeleteChargedMeter(t *testing.T) {
	c := newCatalogEnv(t)
	c.catalogMeters(keyAcme)
	c.createPlan(keyAcme, `{"code": "p", "name": "p", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "storage", "charge_model": "standard", "properties": {"amount": "1"}}]}`)
	code, body := c.call("DELETE", "/api/v1/meters/storage", keyAcme, "")
	if code != http.StatusConflict || !strings.Contains(string(body), `"plans":["p"]`) {
		t.Errorf("deleting a charged meter: %d %s, want 409 naming plan p", code, body)
	}
	// Another organization's plans do not hold it.
	c.catalogMeters(keyGlobex)
	c.mustCall("DELETE", "/api/v1/meters/storage", keyGlobex, "", http.StatusNoContent, nil)
	// Without the charge, it goes.
	c.mustCall("PUT", PlansRoute+"/p", keyAcme, `{"code": "p", "name": "p", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "calls", "charge_model": "standard", "properties": {"amount": "1"}}]}`, http.StatusOK, nil)
	c.mustCall("DELETE", "/api/v1/meters/storage", keyAcme, "", http.StatusNoContent, nil)
}

// TestPlanUpdateCountsTerminatedSubscriptions: a PUT that adds a meter to a
// plan must not make a terminated subscription's last (not yet invoiced)
// period bill a meter the customer's other subscription billed meanwhile.
func TestPlanUpdateCountsTerminatedSubscriptions(t *testing.T) {
	c := newCatalogEnv(t)
	_, storage := c.catalogMeters(keyAcme)
	c.createPlan(keyAcme, `{"code": "storage", "name": "storage", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "storage", "charge_model": "standard", "properties": {"amount": "1"}}]}`)
	c.createPlan(keyAcme, `{"code": "addon", "name": "addon", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "calls", "charge_model": "standard", "properties": {"amount": "1"}}]}`)
	c.createCustomer(keyAcme, `{"external_id": "c1"}`)
	c.clock.set(at(t, "2026-02-01T00:00:00Z"))
	c.createSubscription(keyAcme, `{"external_id": "s-storage", "external_customer_id": "c1", "plan_code": "storage"}`)
	c.createSubscription(keyAcme, `{"external_id": "s-addon", "external_customer_id": "c1", "plan_code": "addon"}`)
	c.insert(storageReading(t, storage, "acme", "c1", "e1", "2026-02-05T00:00:00Z", "10"))
	// The add-on ends mid-February; its February period is not invoiced yet.
	c.clock.set(at(t, "2026-02-15T00:00:00Z"))
	c.mustCall("DELETE", SubscriptionsRoute+"/s-addon", keyAcme, "", http.StatusOK, nil)
	// The add-on plan later gets a storage charge (for new customers).
	code, body := c.call("PUT", PlansRoute+"/addon", keyAcme, `{"name": "addon", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "calls", "charge_model": "standard", "properties": {"amount": "1"}},
		            {"meter": "storage", "charge_model": "standard", "properties": {"amount": "1"}}]}`)
	t.Logf("PUT addon: %d %.120s", code, body)
	if code == http.StatusOK {
		c.clock.set(at(t, "2026-02-20T00:00:00Z"))
		storageSub := c.usage(keyAcme, "s-storage", "")
		addon := c.usage(keyAcme, "s-addon", "") // its last period, Feb 1-15
		t.Logf("s-storage Feb: total %d; s-addon Feb 1-15: %s..%s total %d", storageSub.Total.AmountCents, addon.From, addon.To, addon.Total.AmountCents)
		if storageSub.Total.AmountCents > 0 && addon.Total.AmountCents > 0 {
			t.Errorf("PUT %s accepted: the 10 GB of Feb 5 are billed by s-storage (%d cents) and by the terminated s-addon (%d cents)",
				PlansRoute+"/addon", storageSub.Total.AmountCents, addon.Total.AmountCents)
		}
	}
}

// TestCanceledPendingSubscriptionHoldsNothing: a pending subscription
// terminated before it started (DELETE, or DELETE of its customer) never
// runs, so it holds no meter for anyone.
func TestCanceledPendingSubscriptionHoldsNothing(t *testing.T) {
	c := newCatalogEnv(t)
	c.catalogMeters(keyAcme)
	c.createPlan(keyAcme, `{"code": "p", "name": "p", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "storage", "charge_model": "standard", "properties": {"amount": "1"}}]}`)
	c.createCustomer(keyAcme, `{"external_id": "c1"}`)
	c.clock.set(at(t, "2026-02-10T00:00:00Z"))
	c.createSubscription(keyAcme, `{"external_id": "s-future", "external_customer_id": "c1", "plan_code": "p", "subscription_at": "2026-06-01T00:00:00Z"}`)
	c.mustCall("DELETE", SubscriptionsRoute+"/s-future", keyAcme, "", http.StatusOK, nil) // canceled before it started
	c.clock.set(at(t, "2026-02-12T00:00:00Z"))
	// Backdated to the start of the month, as billing teams do when a
	// contract is signed late.
	if code, body := c.call("POST", SubscriptionsRoute, keyAcme, `{"external_id": "s-now", "external_customer_id": "c1", "plan_code": "p",
		"subscription_at": "2026-02-01T00:00:00Z"}`); code != http.StatusCreated {
		t.Errorf("s-future never ran, yet: %d %.300s", code, body)
	}
}

// TestPlanChangeAtPeriodEnd: a subscription's end can be scheduled (PUT
// ending_at), so that the next plan starts when the period ends; the
// immediate change is DELETE then POST at terminated_at.
func TestPlanChangeAtPeriodEnd(t *testing.T) {
	c := newCatalogEnv(t)
	c.catalogMeters(keyAcme)
	for _, code := range []string{"team", "solo"} {
		c.createPlan(keyAcme, `{"code": "`+code+`", "name": "`+code+`", "interval": "monthly", "amount_currency": "USD",
			"charges": [{"meter": "storage", "charge_model": "standard", "properties": {"amount": "1"}}]}`)
	}
	c.createCustomer(keyAcme, `{"external_id": "c1"}`)
	c.clock.set(at(t, "2026-02-10T00:00:00Z"))
	c.createSubscription(keyAcme, `{"external_id": "s-team", "external_customer_id": "c1", "plan_code": "team", "subscription_at": "2026-01-01T00:00:00Z"}`)
	solo := `{"external_id": "s-solo", "external_customer_id": "c1", "plan_code": "solo", "subscription_at": "2026-03-01T00:00:00Z"}`
	if code, _ := c.call("POST", SubscriptionsRoute, keyAcme, solo); code != http.StatusBadRequest {
		t.Fatalf("solo from March while team runs on: %d, want 400", code)
	}

	for _, tt := range []struct {
		name, body string
		want       int
		field      string
	}{
		{"in the past", `{"ending_at": "2026-02-01T00:00:00Z"}`, 400, "ending_at"},
		{"not a time", `{"ending_at": "March"}`, 400, "ending_at"},
		{"another field", `{"plan_code": "solo"}`, 400, "plan_code"},
		{"another id", `{"external_id": "s-other", "ending_at": "2026-03-01T00:00:00Z"}`, 400, "external_id"},
		{"at the end of February, Lago's wrapper", `{"subscription": {"ending_at": "2026-03-01T00:00:00Z", "name": "Team until March"}}`, 200, ""},
	} {
		code, body := c.call("PUT", SubscriptionsRoute+"/s-team", keyAcme, tt.body)
		if code != tt.want || (tt.field != "" && !strings.Contains(string(body), `"field":"`+tt.field+`"`)) {
			t.Errorf("%s: %d %s, want %d naming %s", tt.name, code, body, tt.want, tt.field)
		}
	}
	c.createSubscription(keyAcme, solo) // starts where team ends
	if s := c.getSubscription(keyAcme, "s-team"); s.EndingAt == nil || s.Name != "Team until March" || s.Status != schemas.StatusActive {
		t.Errorf("s-team after PUT: %+v", s)
	}
	// Clearing the end again would make team overlap solo.
	if code, body := c.call("PUT", SubscriptionsRoute+"/s-team", keyAcme, `{"ending_at": null}`); code != http.StatusBadRequest ||
		!strings.Contains(string(body), "s-solo") {
		t.Errorf("clearing team's end while solo follows: %d %s, want 400 naming s-solo", code, body)
	}
	// An ended subscription does not change.
	c.clock.set(at(t, "2026-03-05T00:00:00Z"))
	if code, _ := c.call("PUT", SubscriptionsRoute+"/s-team", keyAcme, `{"name": "x"}`); code != http.StatusBadRequest {
		t.Errorf("renaming an ended subscription: %d, want 400", code)
	}
	if code, _ := c.call("PUT", SubscriptionsRoute+"/nope", keyAcme, `{"name": "x"}`); code != http.StatusNotFound {
		t.Errorf("unknown subscription: %d, want 404", code)
	}
}

// TestAmountOutOfRange: exact units whose price does not fit an amount in
// minor units are a 422 naming the problem, not a 500 bug.
func TestAmountOutOfRange(t *testing.T) {
	c := newCatalogEnv(t)
	_, storage := c.catalogMeters(keyAcme)
	c.createPlan(keyAcme, `{"code": "p", "name": "p", "interval": "monthly", "amount_currency": "USD",
		"charges": [{"meter": "storage", "charge_model": "standard", "properties": {"amount": "1000000"}}]}`)
	c.createCustomer(keyAcme, `{"external_id": "c1"}`)
	c.createSubscription(keyAcme, `{"external_id": "s1", "external_customer_id": "c1", "plan_code": "p", "subscription_at": "2026-02-01T00:00:00Z"}`)
	c.insert(storageReading(t, storage, "acme", "c1", "e1", "2026-02-03T00:00:00Z", "90000000000000000000000000"[:25]))
	c.clock.set(at(t, "2026-02-20T00:00:00Z"))
	code, body := c.call("GET", SubscriptionsRoute+"/s1/usage", keyAcme, "")
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(body), "usage_out_of_range") {
		t.Errorf("9e23 units at $1,000,000: %d %s, want 422 usage_out_of_range", code, body)
	}
}

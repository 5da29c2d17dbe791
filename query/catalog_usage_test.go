package query

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

// usageJSONBody is the decoded body of the subscription usage route.
type usageJSONBody struct {
	Subscription struct {
		ExternalID         string `json:"external_id"`
		ExternalCustomerID string `json:"external_customer_id"`
		PlanCode           string `json:"plan_code"`
		Status             string `json:"status"`
	} `json:"subscription"`
	Currency string `json:"currency"`
	From     string `json:"from"`
	To       string `json:"to"`
	Charges  []struct {
		ChargeID           string      `json:"charge_id"`
		Meter              string      `json:"meter"`
		ChargeModel        string      `json:"charge_model"`
		InvoiceDisplayName string      `json:"invoice_display_name"`
		Units              json.Number `json:"units"`
		EventsCount        uint64      `json:"events_count"`
		moneyJSON
		Groups []struct {
			GroupBy     map[string]string `json:"group_by"`
			Units       json.Number       `json:"units"`
			EventsCount uint64            `json:"events_count"`
			moneyJSON
		} `json:"groups"`
	} `json:"charges"`
	FixedFee                proratedMoneyJSON `json:"fixed_fee"`
	MinimumCommitment       proratedMoneyJSON `json:"minimum_commitment"`
	MinimumCommitmentTrueUp moneyJSON         `json:"minimum_commitment_true_up"`
	ChargesTotal            moneyJSON         `json:"charges_total"`
	Total                   moneyJSON         `json:"total"`
	Proration               *prorationJSON    `json:"proration"`
}

func (c *catalogEnv) usage(key, id, query string) usageJSONBody {
	c.t.Helper()
	var u usageJSONBody
	c.mustCall("GET", SubscriptionsRoute+"/"+id+"/usage"+query, key, "", http.StatusOK, &u)
	return u
}

// calls returns n readings of the calls meter (COUNT, by region), one a
// second from start.
func calls(t *testing.T, m schemas.Meter, org, customer, region, start string, n int) []reading {
	var out []reading
	first := at(t, start)
	for i := range n {
		out = append(out, reading{org: org, meter: m.Key, revision: m.Revision, customer: customer,
			eventID: fmt.Sprintf("%s-%s-%s-%d", customer, region, start, i), time: first.Add(time.Duration(i) * time.Second),
			value: "1", groups: map[string]string{"region": region}})
	}
	return out
}

func storageReading(t *testing.T, m schemas.Meter, org, customer, id, when, gb string) reading {
	return reading{org: org, meter: m.Key, revision: m.Revision, customer: customer, eventID: id, time: at(t, when), value: gb}
}

const meteredPlan = `{"code": "metered", "name": "Metered", "interval": "monthly", "amount_cents": 1000, "amount_currency": "USD",
	"minimum_commitment_cents": 2000,
	"charges": [
		{"id": "ch_calls", "meter": "calls", "charge_model": "graduated", "properties": {"graduated_ranges": [
			{"from_value": 0, "to_value": 100, "per_unit_amount": "0.01", "flat_amount": "0"},
			{"from_value": 101, "to_value": null, "per_unit_amount": "0.005", "flat_amount": "1"}]}},
		{"id": "ch_storage", "meter": "storage", "charge_model": "standard", "invoice_display_name": "Storage GB",
		 "properties": {"amount": "0.25"}}]}`

// TestSubscriptionUsageAmounts prices readings inserted for a
// subscription's customer, against hand-computed amounts.
func TestSubscriptionUsageAmounts(t *testing.T) {
	c := newCatalogEnv(t)
	callsMeter, storageMeter := c.catalogMeters(keyAcme)
	c.createPlan(keyAcme, meteredPlan)
	c.createCustomer(keyAcme, `{"external_id": "c1"}`)
	c.createSubscription(keyAcme, `{"external_id": "s1", "external_customer_id": "c1", "plan_code": "metered", "subscription_at": "2026-01-10T00:00:00Z"}`)
	var rows []reading
	rows = append(rows, calls(t, callsMeter, "acme", "c1", "eu", "2026-02-01T00:00:00Z", 150)...)  // first second of February
	rows = append(rows, calls(t, callsMeter, "acme", "c1", "us", "2026-02-28T23:58:20Z", 100)...)  // up to its last second
	rows = append(rows, calls(t, callsMeter, "acme", "c1", "eu", "2026-01-20T00:00:00Z", 5)...)    // the previous period
	rows = append(rows, calls(t, callsMeter, "acme", "c1", "eu", "2026-01-05T00:00:00Z", 3)...)    // before subscription_at
	rows = append(rows, calls(t, callsMeter, "acme", "c1", "us", "2026-03-01T00:00:00Z", 7)...)    // the next period
	rows = append(rows, calls(t, callsMeter, "acme", "c2", "eu", "2026-02-10T00:00:00Z", 40)...)   // another customer
	rows = append(rows, calls(t, callsMeter, "globex", "c1", "eu", "2026-02-10T00:00:00Z", 40)...) // another organization
	rows = append(rows,
		storageReading(t, storageMeter, "acme", "c1", "st1", "2026-02-03T00:00:00Z", "10.5"),
		storageReading(t, storageMeter, "acme", "c1", "st2", "2026-02-04T00:00:00Z", "2.333"),
		storageReading(t, storageMeter, "acme", "c2", "st3", "2026-02-04T00:00:00Z", "100"))
	c.insert(rows...)
	c.clock.set(at(t, "2026-02-20T00:00:00Z"))

	// February, the current period: calls 250 = 100 × 0.01 + 150 × 0.005
	// + 1 flat = 2.75, split 150:100 over the regions; storage 12.833 ×
	// 0.25 = 3.20825, rounded once to 3.21. Charges 5.96 and the 10.00 fee
	// are below the 20.00 minimum: a true-up of 4.04. Total 10.00 + 5.96 + 4.04.
	u := c.usage(keyAcme, "s1", "")
	if u.Subscription.ExternalID != "s1" || u.Subscription.ExternalCustomerID != "c1" || u.Subscription.PlanCode != "metered" ||
		u.Subscription.Status != "active" || u.Currency != "USD" ||
		u.From != "2026-02-01T00:00:00Z" || u.To != "2026-03-01T00:00:00Z" || len(u.Charges) != 2 {
		t.Fatalf("current usage: %+v", u)
	}
	ch := u.Charges[0]
	if ch.ChargeID != "ch_calls" || ch.Meter != "calls" || ch.ChargeModel != "graduated" || ch.InvoiceDisplayName != "calls" ||
		ch.Units != "250" || ch.EventsCount != 250 || ch.moneyJSON != (moneyJSON{"2.75", 275}) || len(ch.Groups) != 2 {
		t.Errorf("calls: %+v", ch)
	}
	for i, want := range []struct {
		region, units string
		money         moneyJSON
	}{{"eu", "150", moneyJSON{"1.65", 165}}, {"us", "100", moneyJSON{"1.10", 110}}} {
		if i >= len(ch.Groups) {
			break
		}
		g := ch.Groups[i]
		if g.GroupBy["region"] != want.region || g.Units.String() != want.units || g.moneyJSON != want.money {
			t.Errorf("calls group %d: %+v, want %+v", i, g, want)
		}
	}
	st := u.Charges[1]
	if st.ChargeID != "ch_storage" || st.InvoiceDisplayName != "Storage GB" || st.Units != "12.833" || st.EventsCount != 2 ||
		st.moneyJSON != (moneyJSON{"3.21", 321}) || st.Groups == nil || len(st.Groups) != 0 {
		t.Errorf("storage: %+v", st)
	}
	wantMoney(t, "current", u, moneyJSON{"5.96", 596}, moneyJSON{"10.00", 1000}, moneyJSON{"20.00", 2000},
		moneyJSON{"4.04", 404}, moneyJSON{"20.00", 2000})
	// A whole period says nothing of proration: the fields are as before it.
	if u.FixedFee.Prorated || u.FixedFee.FullAmountCents != nil || u.MinimumCommitment.Prorated || u.Proration != nil {
		t.Errorf("a whole period is prorated: fee %+v minimum %+v proration %+v", u.FixedFee, u.MinimumCommitment, u.Proration)
	}

	// The previous period starts at subscription_at: 5 calls, 0.05. It is
	// January 10th to 31st, 22 days of 31 (calendar billing in UTC), so
	// the fee and the minimum are prorated, as in Lago (this figure
	// changed with proration; it was the whole 10.00 and 20.00, a true-up
	// of 9.95): 10.00 × 22/31 = 7.0968 -> 7.10, 20.00 × 22/31 = 14.1935
	// -> 14.19, true-up 14.19 - 7.15 = 7.04.
	p := c.usage(keyAcme, "s1", "?period=previous")
	if p.From != "2026-01-10T00:00:00Z" || p.To != "2026-02-01T00:00:00Z" || p.Charges[0].Units != "5" ||
		p.Charges[1].Units != "0" || p.Charges[1].EventsCount != 0 {
		t.Errorf("previous: %+v", p)
	}
	wantMoney(t, "previous", p, moneyJSON{"0.05", 5}, moneyJSON{"7.10", 710}, moneyJSON{"14.19", 1419},
		moneyJSON{"7.04", 704}, moneyJSON{"14.19", 1419})
	if f, m := p.FixedFee, p.MinimumCommitment; !f.Prorated || f.FullAmount != "10.00" || f.FullAmountCents == nil || *f.FullAmountCents != 1000 ||
		!m.Prorated || m.FullAmount != "20.00" || m.FullAmountCents == nil || *m.FullAmountCents != 2000 {
		t.Errorf("previous: fee %+v minimum %+v, want both prorated from 10.00 and 20.00", f, m)
	}
	if want := (prorationJSON{"2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", 31, 22, 22}); p.Proration == nil || *p.Proration != want {
		t.Errorf("previous: proration %+v, want %+v", p.Proration, want)
	}
	if cur := c.usage(keyAcme, "s1", "?period=current"); cur.ChargesTotal != u.ChargesTotal {
		t.Errorf("period=current: %+v, default %+v", cur.ChargesTotal, u.ChargesTotal)
	}

	// An explicit range is priced as one period, from subscription_at at
	// the earliest (the 3 calls before it are not the subscription's):
	// 262 calls = 1 + 162 × 0.005 + 1 = 2.81. It is not a billing period:
	// the fee and the minimum are whole.
	x := c.usage(keyAcme, "s1", "?from=2026-01-01T00:00:00Z&to=2026-03-02T00:00:00%2B01:00")
	if x.From != "2026-01-10T00:00:00Z" || x.To != "2026-03-01T23:00:00Z" || x.Charges[0].Units != "262" ||
		x.Charges[0].moneyJSON != (moneyJSON{"2.81", 281}) || x.Charges[1].moneyJSON != (moneyJSON{"3.21", 321}) {
		t.Errorf("explicit range: %+v", x)
	}
	if len(x.Charges[0].Groups) == 2 && x.Charges[0].Groups[0].AmountCents+x.Charges[0].Groups[1].AmountCents != 281 {
		t.Errorf("group amounts do not add up to the charge: %+v", x.Charges[0].Groups)
	}
	wantMoney(t, "explicit", x, moneyJSON{"6.02", 602}, moneyJSON{"10.00", 1000}, moneyJSON{"20.00", 2000},
		moneyJSON{"3.98", 398}, moneyJSON{"20.00", 2000})

	// A rounding case of its own: 265 calls = 1 + 165 × 0.005 + 1 = 2.825,
	// rounded half away from zero to 2.83.
	c.insert(calls(t, callsMeter, "acme", "c1", "us", "2026-01-11T00:00:00Z", 3)...)
	x = c.usage(keyAcme, "s1", "?from=2026-01-01T00:00:00Z&to=2026-03-02T00:00:00%2B01:00")
	if x.Charges[0].Units != "265" || x.Charges[0].moneyJSON != (moneyJSON{"2.83", 283}) {
		t.Errorf("265 calls: %+v", x.Charges[0])
	}
}

func wantMoney(t *testing.T, what string, u usageJSONBody, charges, fee, minimum, trueUp, total moneyJSON) {
	t.Helper()
	got := []moneyJSON{u.ChargesTotal, u.FixedFee.moneyJSON, u.MinimumCommitment.moneyJSON, u.MinimumCommitmentTrueUp, u.Total}
	want := []moneyJSON{charges, fee, minimum, trueUp, total}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%s: charges_total, fixed_fee, minimum_commitment, minimum_commitment_true_up, total = %+v, want %+v", what, got, want)
			return
		}
	}
}

// The period is the subscription's calendar month in its time zone: an
// event at 03:00Z on March 1st is still February in New York, and the
// bounds are written with New York's offset. Amounts in JPY have no
// decimals.
func TestSubscriptionUsageTimeZone(t *testing.T) {
	c := newCatalogEnv(t)
	callsMeter, _ := c.catalogMeters(keyAcme)
	c.createPlan(keyAcme, `{"code": "yen", "name": "Yen", "interval": "monthly", "amount_currency": "JPY", "amount_cents": 500,
		"charges": [{"meter": "calls", "charge_model": "standard", "properties": {"amount": "1.5"}}]}`)
	c.createCustomer(keyAcme, `{"external_id": "ny", "timezone": "America/New_York"}`)
	c.createSubscription(keyAcme, `{"external_id": "s-ny", "external_customer_id": "ny", "plan_code": "yen", "subscription_at": "2026-01-01T05:00:00Z"}`)
	var rows []reading
	rows = append(rows, calls(t, callsMeter, "acme", "ny", "us", "2026-03-01T03:00:00Z", 3)...) // Feb 28, 22:00 in New York
	rows = append(rows, calls(t, callsMeter, "acme", "ny", "us", "2026-02-01T04:59:59Z", 1)...) // January 31 in New York
	rows = append(rows, calls(t, callsMeter, "acme", "ny", "us", "2026-03-01T05:00:00Z", 1)...) // March 1 in New York
	c.insert(rows...)
	c.clock.set(at(t, "2026-03-01T04:00:00Z"))

	u := c.usage(keyAcme, "s-ny", "")
	if u.From != "2026-02-01T00:00:00-05:00" || u.To != "2026-03-01T00:00:00-05:00" || u.Currency != "JPY" ||
		u.Charges[0].Units != "3" || u.Charges[0].moneyJSON != (moneyJSON{"5", 5}) || u.Total != (moneyJSON{"505", 505}) {
		t.Errorf("New York February: %+v", u)
	}
}

func TestSubscriptionUsageErrors(t *testing.T) {
	c := newCatalogEnv(t)
	c.catalogMeters(keyAcme)
	c.createPlan(keyAcme, meteredPlan)
	c.createPlan(keyAcme, `{"code": "gone", "name": "Gone", "interval": "monthly", "amount_currency": "USD"}`)
	c.createCustomer(keyAcme, `{"external_id": "c1"}`)
	c.clock.set(at(t, "2026-02-20T00:00:00Z"))
	c.createSubscription(keyAcme, `{"external_id": "new", "external_customer_id": "c1", "plan_code": "metered", "subscription_at": "2026-02-10T00:00:00Z"}`)
	c.createSubscription(keyAcme, `{"external_id": "orphan", "external_customer_id": "c1", "plan_code": "gone"}`)
	c.mustCall("DELETE", SubscriptionsRoute+"/orphan", keyAcme, "", http.StatusOK, nil)
	// The API keeps a plan its subscriptions use; one removed underneath
	// (by an older Tally, or by hand) leaves its subscription unpriceable.
	c.mustCall("DELETE", PlansRoute+"/gone", keyAcme, "", http.StatusConflict, nil)
	if err := c.store.DeletePlan(context.Background(), "acme", "gone"); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct{ query, field string }{
		{"?period=next", "period"},
		{"?period=previous", "period"}, // the subscription started in this period
		{"?from=2026-02-01T00:00:00Z", "to"},
		{"?to=2026-02-01T00:00:00Z", "from"},
		{"?from=2026-02-01T00:00:00Z&to=2026-02-01T00:00:00Z", "from"},
		{"?from=yesterday&to=2026-02-01T00:00:00Z", "from"},
		{"?from=2026-01-01T00:00:00Z&to=2026-02-01", "to"},
		{"?period=current&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z", "period"},
		{"?period=current&period=previous", "period"},
		{"?window_size=DAY", "window_size"},
	} {
		code, body := c.call("GET", SubscriptionsRoute+"/new/usage"+tt.query, keyAcme, "")
		wantFieldError(t, code, body, http.StatusBadRequest, httpapi.CodeValidation, tt.field)
	}
	code, body := c.call("GET", SubscriptionsRoute+"/nope/usage", keyAcme, "")
	wantMessage(t, wantFieldError(t, code, body, http.StatusNotFound, httpapi.CodeNotFound, ""), "GET /api/v1/subscriptions")
	code, body = c.call("GET", SubscriptionsRoute+"/orphan/usage", keyAcme, "")
	wantFieldError(t, code, body, http.StatusConflict, httpapi.CodeConflict, "")
	code, body = c.call("POST", SubscriptionsRoute+"/new/usage", keyAcme, "")
	wantFieldError(t, code, body, http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed, "")
}

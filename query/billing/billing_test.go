package billing_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/query/billing"
	"github.com/tally-oss/tally/query/usage"
	"github.com/tally-oss/tally/schemas"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type fixture struct {
	t       *testing.T
	ctx     context.Context
	meters  *meterstore.Store
	catalog *catalogstore.Store
	usage   *usage.Service // rows at most 1000 per query
	svc     *billing.Service
}

func newFixture(t *testing.T, now time.Time) (*fixture, func(...testenv.Reading)) {
	t.Helper()
	conn := testenv.MigratedDatabase(t)
	f := &fixture{t: t, ctx: context.Background(), meters: meterstore.New(conn), catalog: catalogstore.New(conn)}
	f.usage = usage.NewService(f.meters, usage.NewClickHouseReader(conn, 1000, nil), meterstore.ErrNotFound)
	f.svc = billing.New(f.catalog, f.usage, catalogstore.ErrNotFound, 1000)
	f.svc.SetClock(func() time.Time { return now })
	return f, func(rs ...testenv.Reading) { testenv.InsertReadings(t, conn, rs...) }
}

func (f *fixture) meter(org, def string) schemas.Meter {
	f.t.Helper()
	m, err := schemas.ParseMeter([]byte(def))
	if err != nil {
		f.t.Fatal(err)
	}
	if m, err = f.meters.Create(f.ctx, org, m); err != nil {
		f.t.Fatal(err)
	}
	return m
}

func (f *fixture) plan(org, def string) schemas.Plan {
	f.t.Helper()
	p, err := schemas.ParsePlan([]byte(def))
	if err != nil {
		f.t.Fatal(err)
	}
	if p, err = f.catalog.CreatePlan(f.ctx, org, p); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fixture) subscribe(org, def string) {
	f.t.Helper()
	s, err := schemas.ParseSubscription([]byte(def))
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.catalog.CreateSubscription(f.ctx, org, s); err != nil {
		f.t.Fatal(err)
	}
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestSubscriptionUsage prices one customer's February in New York: the
// event at 2026-03-01T03:00Z is still February there, the one at 05:00Z
// is March; another customer's and another organization's readings and
// an old meter revision's never count. Totals are hand-computed.
func TestSubscriptionUsage(t *testing.T) {
	f, insert := newFixture(t, at("2026-02-20T12:00:00Z"))
	tokens := f.meter("acme", `{"key":"tokens","event_type":"llm","aggregation":"SUM","value_property":"$.tokens","group_by":{"model":"$.model"}}`)
	peak := f.meter("acme", `{"key":"peak","event_type":"gpu","aggregation":"MAX","value_property":"$.gpus","group_by":{"region":"$.region"}}`)
	f.plan("acme", `{"code":"pro","name":"Pro","interval":"monthly","amount_cents":4900,"amount_currency":"USD",
		"minimum_commitment_cents":10000,
		"charges":[
		  {"id":"ch_tokens","meter":"tokens","charge_model":"graduated","properties":{"graduated_ranges":[
		    {"from_value":0,"to_value":1000,"per_unit_amount":"0","flat_amount":"0"},
		    {"from_value":1000,"to_value":null,"per_unit_amount":"0.0015","flat_amount":"2"}]}},
		  {"id":"ch_peak","meter":"peak","charge_model":"standard","properties":{"amount":"10.005"}}]}`)
	f.subscribe("acme", `{"external_id":"sub-1","external_customer_id":"c1","plan_code":"pro",
		"subscription_at":"2026-01-15T10:00:00Z","timezone":"America/New_York"}`)

	r := func(meter schemas.Meter, customer, id, when, value string, groups map[string]string) testenv.Reading {
		return testenv.Reading{Org: "acme", Meter: meter.Key, Revision: meter.Revision, Customer: customer, EventID: id,
			Time: at(when), Value: value, Groups: groups}
	}
	gpt := map[string]string{"model": "gpt"}
	claude := map[string]string{"model": "claude"}
	insert(
		r(tokens, "c1", "e1", "2026-02-01T05:00:00Z", "1000.5", gpt),    // first instant of February in New York
		r(tokens, "c1", "e2", "2026-02-10T00:00:00Z", "500.25", claude), //
		r(tokens, "c1", "e3", "2026-03-01T03:00:00Z", "99.25", gpt),     // 22:00 on Feb 28 in New York
		r(tokens, "c1", "e4", "2026-03-01T05:00:00Z", "7", gpt),         // March in New York
		r(tokens, "c1", "e5", "2026-02-01T04:59:59.999Z", "13", gpt),    // January in New York
		r(tokens, "c2", "e6", "2026-02-10T00:00:00Z", "100000", gpt),    // another customer
		r(peak, "c1", "p1", "2026-02-02T00:00:00Z", "3", map[string]string{"region": "eu"}),
		r(peak, "c1", "p2", "2026-02-03T00:00:00Z", "2", map[string]string{"region": "us"}),
	)
	insert(testenv.Reading{Org: "globex", Meter: "tokens", Revision: tokens.Revision, Customer: "c1", EventID: "x",
		Time: at("2026-02-10T00:00:00Z"), Value: "1000000"})
	insert(testenv.Reading{Org: "acme", Meter: "tokens", Revision: tokens.Revision - 1, Customer: "c1", EventID: "old",
		Time: at("2026-02-10T00:00:00Z"), Value: "1000000"})

	u, err := f.svc.SubscriptionUsage(f.ctx, "acme", "sub-1", billing.PeriodRequest{})
	if err != nil {
		t.Fatal(err)
	}
	inv := u.Invoice
	if got := inv.Period.From.UTC().Format(time.RFC3339); got != "2026-02-01T05:00:00Z" {
		t.Errorf("period from %s", got)
	}
	if got := inv.Period.To.UTC().Format(time.RFC3339); got != "2026-03-01T05:00:00Z" {
		t.Errorf("period to %s", got)
	}
	if u.Subscription.Subscription.Status != schemas.StatusActive {
		t.Errorf("status %s", u.Subscription.Subscription.Status)
	}
	// tokens: 1000.5 + 500.25 + 99.25 = 1600 units; 600 above the first
	// tier at 0.0015 = 0.90, plus the flat 2 = 2.90 USD.
	// peak: MAX over the period is 3 GPUs at 10.005 = 30.015 -> 30.02 (half away from zero).
	// charges 32.92 + fee 49.00 = 81.92 < minimum 100.00 (Lago counts the
	// fee): true-up 18.08; total 100.00.
	want := []struct {
		id, units string
		events    uint64
		minor     int64
	}{{"ch_tokens", "1600", 3, 290}, {"ch_peak", "3", 2, 3002}}
	if len(inv.Charges) != len(want) {
		t.Fatalf("%d charge lines, want %d", len(inv.Charges), len(want))
	}
	for i, w := range want {
		c := inv.Charges[i]
		if c.Charge.ID != w.id || c.Units.String() != w.units || c.Events != w.events || c.Amount.Minor != w.minor {
			t.Errorf("charge %d: %s units %s events %d amount %d, want %+v", i, c.Charge.ID, c.Units, c.Events, c.Amount.Minor, w)
		}
	}
	if inv.ChargesTotal.Minor != 3292 || inv.FixedFee.Minor != 4900 || inv.TrueUp.Minor != 1808 || inv.Total.Minor != 10000 {
		t.Errorf("charges %d fixed %d true-up %d total %d", inv.ChargesTotal.Minor, inv.FixedFee.Minor, inv.TrueUp.Minor, inv.Total.Minor)
	}
	// Groups are reported per charge; their amounts add up to the charge.
	groups := inv.Charges[0].Groups
	if len(groups) != 2 || groups[0].Values["model"] != "claude" || groups[0].Units.String() != "500.25" ||
		groups[1].Values["model"] != "gpt" || groups[1].Units.String() != "1099.75" || groups[1].Events != 2 ||
		groups[0].Amount.Minor+groups[1].Amount.Minor != 290 {
		t.Errorf("token groups %+v", groups)
	}

	// The previous period is January from the subscription's start.
	prev, err := f.svc.SubscriptionUsage(f.ctx, "acme", "sub-1", billing.PeriodRequest{Which: billing.Previous})
	if err != nil {
		t.Fatal(err)
	}
	if !prev.Invoice.Period.From.Equal(at("2026-01-15T10:00:00Z")) || prev.Invoice.Charges[0].Units.String() != "13" {
		t.Errorf("previous period %v units %s", prev.Invoice.Period, prev.Invoice.Charges[0].Units)
	}
}

func TestSubscriptionUsageErrors(t *testing.T) {
	f, _ := newFixture(t, at("2026-02-20T12:00:00Z"))
	f.meter("acme", `{"key":"calls","event_type":"api","aggregation":"COUNT"}`)
	f.plan("acme", `{"code":"basic","name":"Basic","interval":"weekly","amount_currency":"EUR",
		"charges":[{"meter":"calls","charge_model":"standard","properties":{"amount":"0.01"}}]}`)
	f.subscribe("acme", `{"external_id":"s","external_customer_id":"c","plan_code":"basic","subscription_at":"2026-02-19T00:00:00Z"}`)

	for _, tt := range []struct {
		name, org, sub string
		req            billing.PeriodRequest
		want           error
	}{
		{"unknown subscription", "acme", "nope", billing.PeriodRequest{}, billing.ErrSubscriptionNotFound},
		{"another organization's subscription", "globex", "s", billing.PeriodRequest{}, billing.ErrSubscriptionNotFound},
		{"no previous period yet", "acme", "s", billing.PeriodRequest{Which: billing.Previous}, billing.ErrPeriod},
		{"unknown period", "acme", "s", billing.PeriodRequest{Which: "next"}, billing.ErrPeriod},
		{"from after to", "acme", "s", billing.PeriodRequest{From: at("2026-02-10T00:00:00Z"), To: at("2026-02-01T00:00:00Z")}, billing.ErrPeriod},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.svc.SubscriptionUsage(f.ctx, tt.org, tt.sub, tt.req); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}

	// A charge whose meter was deleted prices zero units: its readings
	// are no longer served.
	if err := f.meters.Delete(f.ctx, "acme", "calls"); err != nil {
		t.Fatal(err)
	}
	u, err := f.svc.SubscriptionUsage(f.ctx, "acme", "s", billing.PeriodRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Invoice.Charges) != 1 || !u.Invoice.Charges[0].Units.IsZero() || u.Invoice.Total.Minor != 0 {
		t.Errorf("deleted meter: %+v", u.Invoice)
	}
}

// TestSubscriptionUsageProration: a calendar subscription that starts on
// January 15th at 10:00 in New York owes 17 of January's 31 days of the
// fixed fee and minimum for its first period (Lago counts the 15th whole),
// and March, cut by termination on the 10th, owes 10 of 31. An explicit
// from/to range is a custom range priced whole, unless it is exactly a
// billing period (after being cut to the subscription's life).
func TestSubscriptionUsageProration(t *testing.T) {
	f, insert := newFixture(t, at("2026-02-20T12:00:00Z"))
	calls := f.meter("acme", `{"key":"calls","event_type":"api","aggregation":"COUNT"}`)
	f.plan("acme", `{"code":"pro","name":"Pro","interval":"monthly","amount_cents":4900,"amount_currency":"USD",
		"minimum_commitment_cents":10000,
		"charges":[{"id":"ch_calls","meter":"calls","charge_model":"standard","properties":{"amount":"1"}}]}`)
	f.subscribe("acme", `{"external_id":"sub-1","external_customer_id":"c1","plan_code":"pro",
		"subscription_at":"2026-01-15T10:00:00-05:00","timezone":"America/New_York"}`)
	f.subscribe("acme", `{"external_id":"sub-2","external_customer_id":"c2","plan_code":"pro",
		"subscription_at":"2026-01-01T00:00:00-05:00","ending_at":"2026-03-10T12:00:00-05:00","timezone":"America/New_York"}`)
	reading := func(customer, id, when string) testenv.Reading {
		return testenv.Reading{Org: "acme", Meter: calls.Key, Revision: calls.Revision, Customer: customer, EventID: id, Time: at(when), Value: "1"}
	}
	insert(reading("c1", "a", "2026-01-20T00:00:00Z"), reading("c1", "b", "2026-01-21T00:00:00Z"),
		reading("c2", "c", "2026-03-05T00:00:00Z"))

	tests := []struct {
		name string
		sub  string
		req  billing.PeriodRequest
		// in cents
		fee, minimum, charges, trueUp, total int64
		prorated                             bool
	}{
		// 4900 × 17/31 = 2687.10 -> 2687; 10000 × 17/31 = 5483.87 -> 5484;
		// 2 calls = 200; true-up 5484 - 2887 = 2597.
		{"the first period, from the 15th", "sub-1", billing.PeriodRequest{Which: billing.Previous}, 2687, 5484, 200, 2597, 5484, true},
		{"a whole period", "sub-1", billing.PeriodRequest{}, 4900, 10000, 0, 5100, 10000, false},
		// January asked for by range is cut to the subscription's life:
		// exactly its first billing period, prorated.
		{"a range that is the first period", "sub-1",
			billing.PeriodRequest{From: at("2026-01-01T05:00:00Z"), To: at("2026-02-01T05:00:00Z")}, 2687, 5484, 200, 2597, 5484, true},
		{"a custom range is priced whole", "sub-1",
			billing.PeriodRequest{From: at("2026-01-16T05:00:00Z"), To: at("2026-02-10T05:00:00Z")}, 4900, 10000, 200, 4900, 10000, false},
		// March 1st to the 10th at noon: 10 days of 31. 4900 × 10/31 =
		// 1580.65 -> 1581; 10000 × 10/31 = 3225.81 -> 3226; 1 call.
		{"the last period, to the end", "sub-2",
			billing.PeriodRequest{From: at("2026-03-01T05:00:00Z"), To: at("2026-04-01T04:00:00Z")}, 1581, 3226, 100, 1545, 3226, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := f.svc.SubscriptionUsage(f.ctx, "acme", tt.sub, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			inv := u.Invoice
			got := []int64{inv.FixedFee.Minor, inv.MinimumCommitment.Minor, inv.ChargesTotal.Minor, inv.TrueUp.Minor, inv.Total.Minor}
			want := []int64{tt.fee, tt.minimum, tt.charges, tt.trueUp, tt.total}
			if !slices.Equal(got, want) || inv.FixedFeeProrated != tt.prorated || inv.MinimumCommitmentProrated != tt.prorated {
				t.Errorf("fee, minimum, charges, true-up, total = %v prorated %v; want %v prorated %v", got, inv.FixedFeeProrated, want, tt.prorated)
			}
			if inv.FullFixedFee.Minor != 4900 || inv.FullMinimumCommitment.Minor != 10000 {
				t.Errorf("full fee %d, full minimum %d", inv.FullFixedFee.Minor, inv.FullMinimumCommitment.Minor)
			}
		})
	}
}

package rating_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/query/rating"
	"github.com/tally-oss/tally/schemas"
)

// usagePlan is a plan with one charge of every model, in USD, $49 a
// period.
func usagePlan(minimumCents int64) schemas.Plan {
	return schemas.Plan{
		Code:                   "usage",
		Interval:               schemas.IntervalMonthly,
		AmountCents:            4900,
		AmountCurrency:         "USD",
		MinimumCommitmentCents: minimumCents,
		Charges: []schemas.Charge{
			withID("api", standard("0.001")),
			withID("storage", graduated(graduatedTiers)),
			withID("seats", volume(volumeTiers)),
			withID("bundles", packaged("5", "10", "100")),
		},
	}
}

// used is usage of a charge by id; Rate prices the plan's charge with
// that id.
func used(id, units string) rating.ChargeUsage {
	return rating.ChargeUsage{Charge: schemas.Charge{ID: id}, Units: dec(units), Events: 1}
}

// someUsage: api 12.345 -> 12.35, storage 31.005 -> 31.01, seats 6.00005
// -> 6.00, bundles unused; 49.36 in all.
var someUsage = []rating.ChargeUsage{used("api", "12345"), used("storage", "500.5"), used("seats", "100.001")}

// invoiceWant is an invoice's amounts in major units, as written on it.
type invoiceWant struct {
	charges                                     []string // per charge line, in plan order
	chargesTotal, fixed, minimum, trueUp, total string
}

func TestRate(t *testing.T) {
	twoSmallCharges := schemas.Plan{Code: "small", AmountCurrency: "USD", Charges: []schemas.Charge{
		withID("a", standard("0.001")), withID("b", standard("0.001")),
	}}
	refunds := schemas.Plan{Code: "refunds", AmountCurrency: "USD", MinimumCommitmentCents: 10000, Charges: []schemas.Charge{
		withID("a", standard("1")),
	}}
	tests := []struct {
		name  string
		plan  schemas.Plan
		usage []rating.ChargeUsage
		want  invoiceWant
	}{
		{
			name: "no usage: every charge has a line at 0; the fixed fee",
			plan: usagePlan(0), usage: nil,
			want: invoiceWant{[]string{"0", "0", "0", "0"}, "0", "49", "0", "0", "49"},
		},
		{
			name: "each charge rounded once; unused charges at 0",
			plan: usagePlan(0), usage: someUsage,
			want: invoiceWant{[]string{"12.35", "31.01", "6", "0"}, "49.36", "49", "0", "0", "98.36"},
		},
		{
			name: "minimum above the charges and the fee: true-up to the minimum",
			plan: usagePlan(10000), usage: someUsage,
			want: invoiceWant{[]string{"12.35", "31.01", "6", "0"}, "49.36", "49", "100", "1.64", "100"},
		},
		{
			name: "minimum equal to the charges and the fee: no true-up",
			plan: usagePlan(9836), usage: someUsage,
			want: invoiceWant{[]string{"12.35", "31.01", "6", "0"}, "49.36", "49", "98.36", "0", "98.36"},
		},
		{
			name: "minimum a cent above the charges and the fee",
			plan: usagePlan(9837), usage: someUsage,
			want: invoiceWant{[]string{"12.35", "31.01", "6", "0"}, "49.36", "49", "98.37", "0.01", "98.37"},
		},
		{
			name: "minimum below the charges: no true-up",
			plan: usagePlan(4000), usage: someUsage,
			want: invoiceWant{[]string{"12.35", "31.01", "6", "0"}, "49.36", "49", "40", "0", "98.36"},
		},
		{
			name: "the minimum counts the fixed fee (Lago)",
			plan: usagePlan(5000), usage: nil,
			want: invoiceWant{[]string{"0", "0", "0", "0"}, "0", "49", "50", "1", "50"},
		},
		{
			name: "rounded per charge, then added: 0.004 + 0.004 is 0, not 0.01",
			plan: twoSmallCharges, usage: []rating.ChargeUsage{used("a", "4"), used("b", "4")},
			want: invoiceWant{[]string{"0", "0"}, "0", "0", "0", "0", "0"},
		},
		{
			name: "rounded per charge, then added: 0.005 + 0.005 is 0.02, not 0.01",
			plan: twoSmallCharges, usage: []rating.ChargeUsage{used("a", "5"), used("b", "5")},
			want: invoiceWant{[]string{"0.01", "0.01"}, "0.02", "0", "0", "0", "0.02"},
		},
		{
			name: "refunds: a negative charge, and the true-up covers it up to the minimum",
			plan: refunds, usage: []rating.ChargeUsage{used("a", "-5")},
			want: invoiceWant{[]string{"-5"}, "-5", "0", "100", "105", "100"},
		},
		{
			name:  "JPY: whole yen",
			plan:  schemas.Plan{Code: "jpy", AmountCurrency: "JPY", AmountCents: 1000, Charges: []schemas.Charge{withID("a", standard("0.5"))}},
			usage: []rating.ChargeUsage{used("a", "3")}, // 1.5 yen
			want:  invoiceWant{[]string{"2"}, "2", "1000", "0", "0", "1002"},
		},
		{
			name:  "BHD: fils, three decimals",
			plan:  schemas.Plan{Code: "bhd", AmountCurrency: "BHD", AmountCents: 1500, MinimumCommitmentCents: 1510, Charges: []schemas.Charge{withID("a", standard("0.0015"))}},
			usage: []rating.ChargeUsage{used("a", "3")}, // 0.0045 BHD
			want:  invoiceWant{[]string{"0.005"}, "0.005", "1.5", "1.51", "0.005", "1.51"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := rating.Rate(tt.plan, rating.Period{}, rating.Proration{}, tt.usage)
			if err != nil {
				t.Fatalf("Rate: %v", err)
			}
			checkInvoiceAddsUp(t, inv)
			var charges []string
			for _, line := range inv.Charges {
				charges = append(charges, line.Amount.Amount.String())
			}
			got := invoiceWant{charges, inv.ChargesTotal.Amount.String(), inv.FixedFee.Amount.String(),
				inv.MinimumCommitment.Amount.String(), inv.TrueUp.Amount.String(), inv.Total.Amount.String()}
			if !equalInvoiceWant(got, tt.want) {
				t.Errorf("Rate:\n got  %+v\n want %+v", got, tt.want)
			}
			if inv.Currency != tt.plan.AmountCurrency {
				t.Errorf("Currency = %q, want %q", inv.Currency, tt.plan.AmountCurrency)
			}
		})
	}
}

func equalInvoiceWant(got, want invoiceWant) bool {
	same := func(a, b string) bool { return dec(a).Equal(dec(b)) }
	return slices.EqualFunc(got.charges, want.charges, same) &&
		same(got.chargesTotal, want.chargesTotal) && same(got.fixed, want.fixed) &&
		same(got.minimum, want.minimum) && same(got.trueUp, want.trueUp) && same(got.total, want.total)
}

// checkInvoiceAddsUp checks what every invoice promises: each Money's two
// forms agree, the charges add up to ChargesTotal, the total to Total,
// and each charge's groups to the charge when they have amounts (unless
// their units add up to 0); when they have none, every group amount is 0.
func checkInvoiceAddsUp(t *testing.T, inv rating.Invoice) {
	t.Helper()
	exponent, _ := schemas.CurrencyExponent(inv.Currency)
	checkMoney := func(what string, m rating.Money) {
		if !m.Amount.Equal(decimal.New(m.Minor, -exponent)) {
			t.Errorf("%s: Amount %s and Minor %d disagree", what, m.Amount, m.Minor)
		}
	}
	var charges int64
	for _, line := range inv.Charges {
		checkMoney("charge "+line.Charge.ID, line.Amount)
		charges += line.Amount.Minor
		var groups int64
		groupUnits := decimal.Zero
		for _, g := range line.Groups {
			checkMoney("group", g.Amount)
			groups += g.Amount.Minor
			groupUnits = groupUnits.Add(g.Units)
		}
		if line.GroupAmounts && len(line.Groups) > 0 && !groupUnits.IsZero() && groups != line.Amount.Minor {
			t.Errorf("charge %s: groups add up to %d, the charge is %d", line.Charge.ID, groups, line.Amount.Minor)
		}
		for _, g := range line.Groups {
			if !line.GroupAmounts && (g.Amount.Minor != 0 || !g.Amount.Amount.IsZero()) {
				t.Errorf("charge %s: group %v has amount %s without GroupAmounts", line.Charge.ID, g.Values, g.Amount.Amount)
			}
		}
	}
	for what, m := range map[string]rating.Money{"charges total": inv.ChargesTotal, "fixed fee": inv.FixedFee,
		"minimum": inv.MinimumCommitment, "true-up": inv.TrueUp, "total": inv.Total} {
		checkMoney(what, m)
	}
	if charges != inv.ChargesTotal.Minor {
		t.Errorf("charges add up to %d, ChargesTotal is %d", charges, inv.ChargesTotal.Minor)
	}
	if sum := inv.ChargesTotal.Minor + inv.FixedFee.Minor + inv.TrueUp.Minor; sum != inv.Total.Minor {
		t.Errorf("ChargesTotal + FixedFee + TrueUp = %d, Total is %d", sum, inv.Total.Minor)
	}
}

func TestRateLines(t *testing.T) {
	period := rating.Period{From: instant(t, "2026-02-01T05:00:00Z"), To: instant(t, "2026-03-01T05:00:00Z")}
	plan := usagePlan(0)
	// Usage names its charge by id only; the line carries the plan's charge.
	inv, err := rating.Rate(plan, period, rating.Proration{}, []rating.ChargeUsage{
		{Charge: schemas.Charge{ID: "seats"}, Units: dec("3"), Events: 7},
	})
	if err != nil {
		t.Fatal(err)
	}
	if inv.Period != period {
		t.Errorf("Period = %v, want %v", inv.Period, period)
	}
	for i, line := range inv.Charges {
		if line.Charge.ID != plan.Charges[i].ID || line.Charge.ChargeModel != plan.Charges[i].ChargeModel {
			t.Errorf("line %d is charge %q (%s), want the plan's %q (%s)", i, line.Charge.ID, line.Charge.ChargeModel, plan.Charges[i].ID, plan.Charges[i].ChargeModel)
		}
	}
	seats := inv.Charges[2]
	if !seats.Units.Equal(dec("3")) || seats.Events != 7 || !seats.Amount.Amount.Equal(dec("0.3")) {
		t.Errorf("seats line: %s units, %d events, %s; want 3, 7, 0.30", seats.Units, seats.Events, seats.Amount.Amount)
	}
	if api := inv.Charges[0]; !api.Units.IsZero() || api.Events != 0 || api.Groups != nil {
		t.Errorf("unused api line: %s units, %d events, %d groups; want zeros", api.Units, api.Events, len(api.Groups))
	}
}

// TestRateGroups: an additive charge (SUM, COUNT) is split over its
// groups in proportion to their units; any other charge's groups carry
// units and events, no amount.
func TestRateGroups(t *testing.T) {
	type group struct {
		value, units string
		want         string // amount
	}
	tests := []struct {
		name        string
		charge      schemas.Charge
		units       string
		notAdditive bool // a MAX, MIN, LATEST, AVG or UNIQUE_COUNT charge
		groups      []group
		want        string // the charge's amount
	}{
		{
			name:   "in proportion to units",
			charge: standard("0.10"), units: "10",
			groups: []group{{"eu", "7", "0.7"}, {"us", "3", "0.3"}},
			want:   "1",
		},
		{
			name:   "a flat fee over three equal groups: the leftover cent to the first",
			charge: volume("0.. @0 +1"), units: "3",
			groups: []group{{"eu", "1", "0.34"}, {"us", "1", "0.33"}, {"ap", "1", "0.33"}},
			want:   "1",
		},
		{
			name:   "largest remainder first, not group order",
			charge: volume("0.. @0 +1"), units: "7",
			groups: []group{{"eu", "1", "0.14"}, {"us", "2", "0.29"}, {"ap", "4", "0.57"}}, // 14.29, 28.57, 57.14
			want:   "1",
		},
		{
			name:   "refunds: negative units, negative amounts",
			charge: standard("0.10"), units: "-10",
			groups: []group{{"eu", "-7", "-0.7"}, {"us", "-3", "-0.3"}},
			want:   "-1",
		},
		{
			name:   "a group without units gets nothing",
			charge: graduated(graduatedTiers), units: "150",
			groups: []group{{"eu", "150", "13.5"}, {"us", "0", "0"}},
			want:   "13.5",
		},
		{
			name:   "groups whose units add up to 0 (a refund netting out usage): nothing to split",
			charge: standard("1"), units: "0",
			groups: []group{{"eu", "5", "0"}, {"us", "-5", "0"}},
			want:   "0",
		},
		{
			name:   "not additive: MAX of groups at 5 and -3",
			charge: standard("1"), units: "5", notAdditive: true,
			groups: []group{{"eu", "5", "0"}, {"us", "-3", "0"}},
			want:   "5",
		},
		{
			name:   "not additive: LATEST -5, in the second group; the first last read 10",
			charge: standard("1"), units: "-5", notAdditive: true,
			groups: []group{{"eu", "10", "0"}, {"us", "-5", "0"}},
			want:   "-5",
		},
		{
			name:   "not additive: groups whose maxima add up to 0",
			charge: standard("1"), units: "5", notAdditive: true,
			groups: []group{{"eu", "5", "0"}, {"us", "-5", "0"}},
			want:   "5",
		},
		{
			name:   "not additive: UNIQUE_COUNT of 3 users, seen in both groups",
			charge: standard("1"), units: "3", notAdditive: true,
			groups: []group{{"eu", "3", "0"}, {"us", "2", "0"}},
			want:   "3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := schemas.Plan{Code: "groups", AmountCurrency: "USD", Charges: []schemas.Charge{withID("c", tt.charge)}}
			u := rating.ChargeUsage{Charge: schemas.Charge{ID: "c"}, Units: dec(tt.units), Additive: !tt.notAdditive}
			for i, g := range tt.groups {
				u.Groups = append(u.Groups, rating.GroupUsage{Values: map[string]string{"region": g.value}, Units: dec(g.units), Events: uint64(i + 1)})
			}
			inv, err := rating.Rate(plan, rating.Period{}, rating.Proration{}, []rating.ChargeUsage{u})
			if err != nil {
				t.Fatal(err)
			}
			checkInvoiceAddsUp(t, inv)
			line := inv.Charges[0]
			if !line.Amount.Amount.Equal(dec(tt.want)) {
				t.Errorf("charge amount %s, want %s", line.Amount.Amount, tt.want)
			}
			if line.GroupAmounts != !tt.notAdditive {
				t.Errorf("GroupAmounts %v for additive %v", line.GroupAmounts, !tt.notAdditive)
			}
			if len(line.Groups) != len(tt.groups) {
				t.Fatalf("%d group lines, want %d", len(line.Groups), len(tt.groups))
			}
			for i, g := range line.Groups {
				want := tt.groups[i]
				if g.Values["region"] != want.value || !g.Units.Equal(dec(want.units)) || g.Events != uint64(i+1) || !g.Amount.Amount.Equal(dec(want.want)) {
					t.Errorf("group %d: %v %s units %d events %s; want %s %s units %d events %s",
						i, g.Values, g.Units, g.Events, g.Amount.Amount, want.value, want.units, i+1, want.want)
				}
			}
			// The invoice does not share the usage's maps.
			u.Groups[0].Values["region"] = "changed"
			if line.Groups[0].Values["region"] == "changed" {
				t.Error("group line shares its Values map with the usage")
			}
		})
	}
}

func TestRateErrors(t *testing.T) {
	withCurrency := func(p schemas.Plan, currency string) schemas.Plan {
		p.AmountCurrency = currency
		return p
	}
	withCharges := func(p schemas.Plan, charges ...schemas.Charge) schemas.Plan {
		p.Charges = charges
		return p
	}
	negativeFee := usagePlan(0)
	negativeFee.AmountCents = -1
	negativeMinimum := usagePlan(-1)
	nearMax := usagePlan(0)
	nearMax.AmountCents = 1<<63 - 100

	tests := []struct {
		name  string
		plan  schemas.Plan
		usage []rating.ChargeUsage
		want  error // nil: any error
	}{
		{"usage for a charge not in the plan", usagePlan(0), []rating.ChargeUsage{used("api", "1"), used("gpu", "1")}, rating.ErrUnknownCharge},
		{"usage for one charge twice", usagePlan(0), []rating.ChargeUsage{used("api", "1"), used("api", "2")}, nil},
		{"two charges with one id", withCharges(usagePlan(0), withID("a", standard("1")), withID("a", standard("2"))), nil, rating.ErrInvalidPlan},
		{"unknown currency", withCurrency(usagePlan(0), "XXX"), nil, rating.ErrUnknownCurrency},
		{"lower-case currency", withCurrency(usagePlan(0), "usd"), nil, rating.ErrUnknownCurrency},
		{"no currency", withCurrency(usagePlan(0), ""), nil, rating.ErrUnknownCurrency},
		{"unknown charge model, even unused", withCharges(usagePlan(0), withID("a", schemas.Charge{ChargeModel: "percentage"})), nil, rating.ErrUnknownChargeModel},
		{"invalid charge, even unused", withCharges(usagePlan(0), withID("a", graduated("0..100 @1"))), nil, rating.ErrInvalidCharge},
		{"negative fixed fee", negativeFee, nil, rating.ErrInvalidPlan},
		{"negative minimum", negativeMinimum, nil, rating.ErrInvalidPlan},
		{"a charge beyond int64 cents", usagePlan(0), []rating.ChargeUsage{used("api", "1e20")}, rating.ErrOverflow},
		{"charges adding up beyond int64 cents",
			withCharges(usagePlan(0), withID("a", standard("1")), withID("b", standard("1"))),
			[]rating.ChargeUsage{used("a", "90000000000000000"), used("b", "90000000000000000")}, rating.ErrOverflow},
		{"a total beyond int64 cents", nearMax, []rating.ChargeUsage{used("api", "1000")}, rating.ErrOverflow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := rating.Rate(tt.plan, rating.Period{}, rating.Proration{}, tt.usage)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("Rate = total %s, %v; want error %v", inv.Total.Amount, err, tt.want)
			}
		})
	}
}

package rating_test

import (
	"fmt"
	"testing"

	"github.com/tally-oss/tally/query/rating"
	"github.com/tally-oss/tally/schemas"
)

// feePlan is a plan with a fixed fee, a minimum and one charge of 1 per
// unit, as the proration table writes it (amounts in minor units).
type feePlan struct {
	currency          string
	fee, minimum      int64
	payInAdvance      bool
	interval          schemas.Interval // monthly when empty
	units             string           // usage of the charge, in major units
	fixedFeeProrated  bool             // want
	minimumIsProrated bool             // want
}

// TestProration prices the billing period holding an instant: the fixed
// fee and the minimum are prorated by days of the subscription's zone
// (Lago's rule, see Proration), usage never. Every figure is worked out
// by hand in the comment beside it.
func TestProration(t *testing.T) {
	ny, calendar, anniversary := "America/New_York", schemas.BillingCalendar, schemas.BillingAnniversary
	monthly := func(zone string, billing schemas.BillingTime, start string) subscriptionSpec {
		return subscriptionSpec{zone: zone, billing: billing, interval: schemas.IntervalMonthly, start: start}
	}
	terminated := func(s subscriptionSpec, at string) subscriptionSpec {
		s.terminated = at
		return s
	}
	interval := func(s subscriptionSpec, i schemas.Interval) subscriptionSpec {
		s.interval = i
		return s
	}
	pro := feePlan{currency: "USD", fee: 4900, minimum: 10000, fixedFeeProrated: true, minimumIsProrated: true}
	proInAdvance := pro
	proInAdvance.payInAdvance = true
	fee := func(currency string, cents int64) feePlan {
		return feePlan{currency: currency, fee: cents, fixedFeeProrated: true, minimumIsProrated: true}
	}
	whole := func(p feePlan) feePlan {
		p.fixedFeeProrated, p.minimumIsProrated = false, false
		return p
	}
	wholeFee := func(p feePlan) feePlan {
		p.fixedFeeProrated = false
		return p
	}
	withUnits := func(p feePlan, units string) feePlan {
		p.units = units
		return p
	}
	jan25 := monthly(ny, calendar, "2026-01-25T14:00:00-05:00")
	calendar2026 := monthly(ny, calendar, "2026-01-01T00:00:00-05:00")
	inApril := "2026-04-10T00:00:00Z"

	tests := []struct {
		name         string
		sub          subscriptionSpec
		at           string // an instant of the period priced
		plan         feePlan
		period, full string
		days         string // Days/FullDays, then DaysToEnd
		// fee, minimum, true-up and total, in major units
		fee, minimum, trueUp, total string
	}{
		{
			name: "calendar monthly from the 25th of a 31-day month: 7 days of 31",
			sub:  jan25, at: "2026-01-26T00:00:00Z", plan: withUnits(pro, "5"),
			period: "2026-01-25T14:00:00-05:00 / 2026-02-01T00:00:00-05:00",
			full:   "2026-01-01T00:00:00-05:00 / 2026-02-01T00:00:00-05:00",
			days:   "7/31 7",
			// 49 × 7/31 = 11.0645 -> 11.06; 100 × 7/31 = 22.5806 -> 22.58;
			// 5 + 11.06 = 16.06, true-up 6.52.
			fee: "11.06", minimum: "22.58", trueUp: "6.52", total: "22.58",
		},
		{
			name: "the 25th at 23:30 in New York (04:30Z on the 26th) counts whole: days of the zone, not of UTC",
			sub:  monthly(ny, calendar, "2026-01-25T23:30:00-05:00"), at: "2026-01-26T12:00:00Z", plan: pro,
			period: "2026-01-25T23:30:00-05:00 / 2026-02-01T00:00:00-05:00",
			full:   "2026-01-01T00:00:00-05:00 / 2026-02-01T00:00:00-05:00",
			days:   "7/31 7",
			fee:    "11.06", minimum: "22.58", trueUp: "11.52", total: "22.58",
		},
		{
			name: "a later month is whole",
			sub:  jan25, at: "2026-02-10T00:00:00Z", plan: whole(pro),
			period: "2026-02-01T00:00:00-05:00 / 2026-03-01T00:00:00-05:00",
			full:   "2026-02-01T00:00:00-05:00 / 2026-03-01T00:00:00-05:00",
			days:   "28/28 28",
			fee:    "49", minimum: "100", trueUp: "51", total: "100",
		},
		{
			name: "February of a leap year: 10 days of 29",
			sub:  monthly("Europe/Paris", calendar, "2028-02-20T09:00:00+01:00"), at: "2028-02-25T00:00:00Z", plan: pro,
			period: "2028-02-20T09:00:00+01:00 / 2028-03-01T00:00:00+01:00",
			full:   "2028-02-01T00:00:00+01:00 / 2028-03-01T00:00:00+01:00",
			days:   "10/29 10",
			// 49 × 10/29 = 16.8966 -> 16.90; 100 × 10/29 = 34.4828 -> 34.48.
			fee: "16.90", minimum: "34.48", trueUp: "17.58", total: "34.48",
		},
		{
			name: "across the start of DST in New York: 27 days of 31, not 647 hours of 743",
			sub:  monthly(ny, calendar, "2026-03-05T00:00:00-05:00"), at: "2026-03-20T00:00:00Z", plan: fee("USD", 10000),
			period: "2026-03-05T00:00:00-05:00 / 2026-04-01T00:00:00-04:00",
			full:   "2026-03-01T00:00:00-05:00 / 2026-04-01T00:00:00-04:00",
			days:   "27/31 27",
			// 100 × 27/31 = 87.0968 -> 87.10 (by the hour: 87.08).
			fee: "87.10", minimum: "0", trueUp: "0", total: "87.10",
		},
		{
			name: "across the end of DST in Berlin: 12 days of 31, not 277 hours of 745",
			sub:  monthly("Europe/Berlin", calendar, "2026-10-20T12:00:00+02:00"), at: "2026-10-25T12:00:00Z", plan: fee("EUR", 10000),
			period: "2026-10-20T12:00:00+02:00 / 2026-11-01T00:00:00+01:00",
			full:   "2026-10-01T00:00:00+02:00 / 2026-11-01T00:00:00+01:00",
			days:   "12/31 12",
			// 100 × 12/31 = 38.7097 -> 38.71 (by the hour: 37.18).
			fee: "38.71", minimum: "0", trueUp: "0", total: "38.71",
		},
		{
			name: "calendar weekly from a Wednesday: Wednesday to Sunday, 5 days of 7",
			sub:  interval(monthly(ny, calendar, "2026-02-25T15:00:00-05:00"), schemas.IntervalWeekly), at: "2026-02-27T00:00:00Z",
			plan:   fee("USD", 1000),
			period: "2026-02-25T15:00:00-05:00 / 2026-03-02T00:00:00-05:00",
			full:   "2026-02-23T00:00:00-05:00 / 2026-03-02T00:00:00-05:00",
			days:   "5/7 5",
			fee:    "7.14", minimum: "0", trueUp: "0", total: "7.14", // 10 × 5/7 = 7.1429
		},
		{
			name: "calendar quarterly from February 10th: 50 days of the first quarter's 90",
			sub:  interval(monthly(ny, calendar, "2026-02-10T09:00:00-05:00"), schemas.IntervalQuarterly), at: "2026-02-20T00:00:00Z",
			plan:   fee("USD", 30000),
			period: "2026-02-10T09:00:00-05:00 / 2026-04-01T00:00:00-04:00",
			full:   "2026-01-01T00:00:00-05:00 / 2026-04-01T00:00:00-04:00",
			days:   "50/90 50",
			fee:    "166.67", minimum: "0", trueUp: "0", total: "166.67", // 300 × 50/90 = 166.6667
		},
		{
			name: "calendar yearly from June 15th in Tokyo: 200 days of 365",
			sub:  interval(monthly("Asia/Tokyo", calendar, "2026-06-15T00:00:00+09:00"), schemas.IntervalYearly), at: "2026-07-01T00:00:00Z",
			plan:   fee("USD", 120000),
			period: "2026-06-15T00:00:00+09:00 / 2027-01-01T00:00:00+09:00",
			full:   "2026-01-01T00:00:00+09:00 / 2027-01-01T00:00:00+09:00",
			days:   "200/365 200",
			fee:    "657.53", minimum: "0", trueUp: "0", total: "657.53", // 1200 × 200/365 = 657.5342
		},
		{
			name: "calendar yearly from July 1st of a leap year: 184 days of 366",
			sub:  interval(monthly("UTC", calendar, "2028-07-01T00:00:00Z"), schemas.IntervalYearly), at: "2028-07-01T00:00:00Z",
			plan:   fee("USD", 120000),
			period: "2028-07-01T00:00:00Z / 2029-01-01T00:00:00Z",
			full:   "2028-01-01T00:00:00Z / 2029-01-01T00:00:00Z",
			days:   "184/366 184",
			fee:    "603.28", minimum: "0", trueUp: "0", total: "603.28", // 1200 × 184/366 = 603.2787
		},
		{
			name: "terminated mid-period, paid in arrears: the fee and the minimum for 15 days of 30, the true-up on them",
			sub:  terminated(calendar2026, "2026-04-15T10:00:00-04:00"), at: inApril, plan: withUnits(pro, "10"),
			period: "2026-04-01T00:00:00-04:00 / 2026-04-15T10:00:00-04:00",
			full:   "2026-04-01T00:00:00-04:00 / 2026-05-01T00:00:00-04:00",
			days:   "15/30 30",
			// 49 × 15/30 = 24.50, 100 × 15/30 = 50; 10 + 24.50 = 34.50, true-up 15.50.
			fee: "24.50", minimum: "50", trueUp: "15.50", total: "50",
		},
		{
			name: "terminated mid-period, paid in advance: the fee was due whole at the start, the minimum is prorated",
			sub:  terminated(calendar2026, "2026-04-15T10:00:00-04:00"), at: inApril, plan: withUnits(wholeFee(proInAdvance), "10"),
			period: "2026-04-01T00:00:00-04:00 / 2026-04-15T10:00:00-04:00",
			full:   "2026-04-01T00:00:00-04:00 / 2026-05-01T00:00:00-04:00",
			days:   "15/30 30",
			fee:    "49", minimum: "50", trueUp: "0", total: "59",
		},
		{
			name: "terminated at midnight: the day it ends on is not used ([from, to) periods; Lago, whose periods end at 23:59:59, would count it)",
			sub:  terminated(calendar2026, "2026-04-16T00:00:00-04:00"), at: inApril, plan: withUnits(pro, "10"),
			period: "2026-04-01T00:00:00-04:00 / 2026-04-16T00:00:00-04:00",
			full:   "2026-04-01T00:00:00-04:00 / 2026-05-01T00:00:00-04:00",
			days:   "15/30 30",
			fee:    "24.50", minimum: "50", trueUp: "15.50", total: "50",
		},
		{
			name: "started and terminated in one month, paid in arrears: 25th to 28th, 4 days of 31",
			sub:  terminated(jan25, "2026-01-28T12:00:00-05:00"), at: "2026-01-26T00:00:00Z", plan: pro,
			period: "2026-01-25T14:00:00-05:00 / 2026-01-28T12:00:00-05:00",
			full:   "2026-01-01T00:00:00-05:00 / 2026-02-01T00:00:00-05:00",
			days:   "4/31 7",
			// 49 × 4/31 = 6.3226 -> 6.32; 100 × 4/31 = 12.9032 -> 12.90.
			fee: "6.32", minimum: "12.90", trueUp: "6.58", total: "12.90",
		},
		{
			name: "started and terminated in one month, paid in advance: the fee from the 25th to the month's end",
			sub:  terminated(jan25, "2026-01-28T12:00:00-05:00"), at: "2026-01-26T00:00:00Z", plan: proInAdvance,
			period: "2026-01-25T14:00:00-05:00 / 2026-01-28T12:00:00-05:00",
			full:   "2026-01-01T00:00:00-05:00 / 2026-02-01T00:00:00-05:00",
			days:   "4/31 7",
			fee:    "11.06", minimum: "12.90", trueUp: "1.84", total: "12.90",
		},
		{
			name: "terminated before it started: nothing owed, in advance or not",
			sub:  terminated(jan25, "2026-01-20T00:00:00-05:00"), at: "2026-01-26T00:00:00Z", plan: proInAdvance,
			period: "2026-01-25T14:00:00-05:00 / 2026-01-25T14:00:00-05:00",
			full:   "2026-01-01T00:00:00-05:00 / 2026-02-01T00:00:00-05:00",
			days:   "0/31 0",
			fee:    "0", minimum: "0", trueUp: "0", total: "0",
		},
		{
			name: "anniversary: the first period is whole by construction",
			sub:  monthly(ny, anniversary, "2026-01-25T14:00:00-05:00"), at: "2026-01-26T00:00:00Z", plan: whole(pro),
			period: "2026-01-25T14:00:00-05:00 / 2026-02-25T14:00:00-05:00",
			full:   "2026-01-25T14:00:00-05:00 / 2026-02-25T14:00:00-05:00",
			days:   "31/31 31",
			fee:    "49", minimum: "100", trueUp: "51", total: "100",
		},
		{
			name: "anniversary terminated before the day's anniversary time: that day is still the previous one's",
			sub:  terminated(monthly("UTC", anniversary, "2026-01-15T14:30:00Z"), "2026-02-01T10:00:00Z"), at: "2026-01-20T00:00:00Z",
			plan:   fee("USD", 4900),
			period: "2026-01-15T14:30:00Z / 2026-02-01T10:00:00Z",
			full:   "2026-01-15T14:30:00Z / 2026-02-15T14:30:00Z",
			days:   "17/31 31",
			fee:    "26.87", minimum: "0", trueUp: "0", total: "26.87", // the days of Jan 15 to Jan 31; 49 × 17/31 = 26.8710
		},
		{
			name: "anniversary terminated after the day's anniversary time: that day counts",
			sub:  terminated(monthly("UTC", anniversary, "2026-01-15T14:30:00Z"), "2026-02-01T16:00:00Z"), at: "2026-01-20T00:00:00Z",
			plan:   fee("USD", 4900),
			period: "2026-01-15T14:30:00Z / 2026-02-01T16:00:00Z",
			full:   "2026-01-15T14:30:00Z / 2026-02-15T14:30:00Z",
			days:   "18/31 31",
			fee:    "28.45", minimum: "0", trueUp: "0", total: "28.45", // 49 × 18/31 = 28.4516
		},
		{
			name: "JPY: a prorated fee in whole yen",
			sub:  monthly("Asia/Tokyo", calendar, "2026-01-25T00:00:00+09:00"), at: "2026-01-26T00:00:00Z", plan: withUnits(fee("JPY", 1000), "3"),
			period: "2026-01-25T00:00:00+09:00 / 2026-02-01T00:00:00+09:00",
			full:   "2026-01-01T00:00:00+09:00 / 2026-02-01T00:00:00+09:00",
			days:   "7/31 7",
			fee:    "226", minimum: "0", trueUp: "0", total: "229", // 1000 × 7/31 = 225.81 yen
		},
		{
			name: "JPY: half a yen rounds away from zero",
			sub:  monthly("Asia/Tokyo", calendar, "2026-04-16T00:00:00+09:00"), at: "2026-04-20T00:00:00Z", plan: fee("JPY", 1001),
			period: "2026-04-16T00:00:00+09:00 / 2026-05-01T00:00:00+09:00",
			full:   "2026-04-01T00:00:00+09:00 / 2026-05-01T00:00:00+09:00",
			days:   "15/30 15",
			fee:    "501", minimum: "0", trueUp: "0", total: "501", // 1001 × 15/30 = 500.5 yen
		},
		{
			name: "BHD: a prorated fee and minimum in fils, half a fils away from zero",
			sub:  monthly("Asia/Bahrain", calendar, "2026-04-16T00:00:00+03:00"), at: "2026-04-20T00:00:00Z",
			plan:   feePlan{currency: "BHD", fee: 1001, minimum: 2001, fixedFeeProrated: true, minimumIsProrated: true},
			period: "2026-04-16T00:00:00+03:00 / 2026-05-01T00:00:00+03:00",
			full:   "2026-04-01T00:00:00+03:00 / 2026-05-01T00:00:00+03:00",
			days:   "15/30 15",
			// 1.001 × 15/30 = 0.5005 -> 0.501; 2.001 × 15/30 = 1.0005 -> 1.001; true-up 0.5.
			fee: "0.501", minimum: "1.001", trueUp: "0.5", total: "1.001",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.sub.schedule(t)
			period := s.At(instant(t, tt.at))
			proration, ok := s.Proration(period)
			if !ok {
				t.Fatalf("Proration(%s): not a billing period", formatPeriod(period))
			}
			if got := formatPeriod(period); got != tt.period {
				t.Errorf("period %s, want %s", got, tt.period)
			}
			if got := formatPeriod(proration.Full); got != tt.full {
				t.Errorf("whole period %s, want %s", got, tt.full)
			}
			if got := formatPeriod(s.Natural(period)); got != tt.full {
				t.Errorf("Natural %s, want %s", got, tt.full)
			}
			if got := fmt.Sprintf("%d/%d %d", proration.Days, proration.FullDays, proration.DaysToEnd); got != tt.days {
				t.Errorf("days %s, want %s", got, tt.days)
			}

			plan := schemas.Plan{Code: "p", Interval: tt.sub.interval, AmountCents: tt.plan.fee, AmountCurrency: tt.plan.currency,
				PayInAdvance: tt.plan.payInAdvance, MinimumCommitmentCents: tt.plan.minimum,
				Charges: []schemas.Charge{withID("u", standard("1"))}}
			var usage []rating.ChargeUsage
			if tt.plan.units != "" {
				usage = []rating.ChargeUsage{used("u", tt.plan.units)}
			}
			inv, err := rating.Rate(plan, period, proration, usage)
			if err != nil {
				t.Fatal(err)
			}
			checkInvoiceAddsUp(t, inv)
			got := []string{inv.FixedFee.Amount.String(), inv.MinimumCommitment.Amount.String(), inv.TrueUp.Amount.String(), inv.Total.Amount.String()}
			want := []string{tt.fee, tt.minimum, tt.trueUp, tt.total}
			for i := range want {
				if !dec(got[i]).Equal(dec(want[i])) {
					t.Errorf("fee, minimum, true-up, total = %v, want %v", got, want)
					break
				}
			}
			if tt.plan.units != "" && !inv.ChargesTotal.Amount.Equal(dec(tt.plan.units)) { // 1 per unit
				t.Errorf("charges %s: usage is never prorated (want %s)", inv.ChargesTotal.Amount, tt.plan.units)
			}
			if inv.FullFixedFee.Minor != tt.plan.fee || inv.FullMinimumCommitment.Minor != tt.plan.minimum {
				t.Errorf("full fee %d, full minimum %d; want the plan's %d and %d", inv.FullFixedFee.Minor, inv.FullMinimumCommitment.Minor, tt.plan.fee, tt.plan.minimum)
			}
			if inv.FixedFeeProrated != tt.plan.fixedFeeProrated || inv.MinimumCommitmentProrated != tt.plan.minimumIsProrated {
				t.Errorf("prorated: fee %v, minimum %v; want %v, %v", inv.FixedFeeProrated, inv.MinimumCommitmentProrated,
					tt.plan.fixedFeeProrated, tt.plan.minimumIsProrated)
			}
			if inv.Proration != proration {
				t.Errorf("invoice proration %+v, want Rate's argument %+v", inv.Proration, proration)
			}
		})
	}
}

// A range that is not one of the subscription's billing periods (an
// explicit from/to) has no whole period to be a share of: it is priced
// whole. So is any period of a zero Schedule.
func TestProrationOfOtherRanges(t *testing.T) {
	s := subscriptionSpec{zone: "America/New_York", billing: schemas.BillingCalendar, interval: schemas.IntervalMonthly,
		start: "2026-01-25T14:00:00-05:00"}.schedule(t)
	first := s.At(instant(t, "2026-01-26T00:00:00Z"))
	for _, p := range []rating.Period{
		{From: first.From, To: first.To.Add(-1)},
		{From: first.From.Add(1), To: first.To},
		{From: instant(t, "2026-01-01T05:00:00Z"), To: first.To},   // the calendar month, before the subscription
		{From: first.From, To: instant(t, "2026-03-01T05:00:00Z")}, // two periods
	} {
		if pr, ok := s.Proration(p); ok || pr != (rating.Proration{}) {
			t.Errorf("Proration(%s) = %+v, %v; want none", formatPeriod(p), pr, ok)
		}
	}
	if _, ok := (rating.Schedule{}).Proration(first); ok {
		t.Error("a zero Schedule prorates")
	}
	// The zero Proration charges the whole fee and minimum.
	plan := schemas.Plan{Code: "p", AmountCents: 4900, AmountCurrency: "USD", MinimumCommitmentCents: 10000}
	inv, err := rating.Rate(plan, first, rating.Proration{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if inv.FixedFee.Minor != 4900 || inv.MinimumCommitment.Minor != 10000 || inv.FixedFeeProrated || inv.MinimumCommitmentProrated {
		t.Errorf("zero Proration: fee %d minimum %d prorated %v %v; want the whole 4900 and 10000",
			inv.FixedFee.Minor, inv.MinimumCommitment.Minor, inv.FixedFeeProrated, inv.MinimumCommitmentProrated)
	}
}

package rating

import (
	"time"

	"github.com/shopspring/decimal"
)

// Proration says how much of a whole billing period a billed period owes
// the plan's fixed fee and minimum commitment for. As in Lago, it is
// counted in days of the subscription's time zone, never in hours: a
// March that starts in EST and ends in EDT has 31 days like any March, and
// a subscription that starts on the 25th at 14:00 owes the 25th whole
// (Lago's Fees::SubscriptionService and
// Commitments::CalculateProratedCoefficientService count days with
// Utils::Datetime.date_diff_with_timezone: started days count whole).
//
// A day of the schedule runs from the anchor's time of day to the next
// day's: midnight to midnight with calendar billing, exactly Lago's
// calendar days; with anniversary billing, from the time of day of
// subscription_at, since Tally's anniversary periods start at that time
// and not at midnight as Lago's do. So a whole period has as many days as
// its dates: 28 to 31 for a month, 7 for a week, 365 or 366 for a year.
//
// The zero Proration prorates nothing: Rate charges the whole fee and
// minimum, as for a range that is not one of the subscription's periods.
type Proration struct {
	// Full is the whole billing period the billed period is part of: the
	// billed period itself unless the subscription started (calendar
	// billing) or ended within it.
	Full Period
	// FullDays is the number of days in Full; 0 prorates nothing.
	FullDays int
	// Days is the number of days the subscription is live in the billed
	// period, its first and last (started) days included: what the
	// minimum commitment, and a fee paid in arrears, are owed for.
	Days int
	// DaysToEnd is the number of days from the billed period's first to
	// the whole period's last: what a fee paid in advance is owed for,
	// since Lago charges it whole at the period's start and termination
	// does not cut it (Lago refunds with a credit note, which Tally does
	// not issue). 0 when the billed period is empty.
	DaysToEnd int
}

// FeeDays is the number of days the fixed fee is owed for: Days, or
// DaysToEnd for a fee paid in advance.
func (p Proration) FeeDays(payInAdvance bool) int {
	if payInAdvance {
		return p.DaysToEnd
	}
	return p.Days
}

// prorates reports whether days of the whole period is a share of it.
func (p Proration) prorates(days int) bool {
	return p.FullDays > 0 && days < p.FullDays
}

// prorate returns minor × days / FullDays, exactly, rounded once to a
// whole minor unit, half away from zero (minor is not negative: Rate
// refuses negative fees and minimums). A whole period is minor itself.
func (p Proration) prorate(minor int64, days int) int64 {
	if !p.prorates(days) {
		return minor
	}
	of := decimal.NewFromInt(int64(p.FullDays))
	quotient, remainder := decimal.NewFromInt(minor).Mul(decimal.NewFromInt(int64(days))).QuoRem(of, 0)
	if remainder.Add(remainder).GreaterThanOrEqual(of) {
		quotient = quotient.Add(decimal.NewFromInt(1))
	}
	return quotient.IntPart() // at most minor: it fits
}

// Natural returns the whole billing period p is part of: the period
// between the two schedule boundaries around p.From, uncut by the
// subscription's start or end. A calendar subscription that starts on
// January 25th has the first period [Jan 25, Feb 1) and its natural
// period [Jan 1, Feb 1); an anniversary subscription's first period is
// its own natural period.
func (s Schedule) Natural(p Period) Period {
	k := 0
	if p.From.After(s.from) {
		k = s.index(p.From)
	}
	return Period{From: s.boundary(k), To: s.boundary(k + 1)}
}

// Proration returns how much of its whole billing period p owes the fixed
// fee and minimum commitment for. ok is false when p is not one of the
// subscription's billing periods (an explicit range, or a zero Schedule):
// such a range is priced as one period, whole.
func (s Schedule) Proration(p Period) (pr Proration, ok bool) {
	if s.loc == nil {
		return Proration{}, false
	}
	if own := s.At(p.From); !own.From.Equal(p.From) || !own.To.Equal(p.To) {
		return Proration{}, false
	}
	pr.Full = s.Natural(p)
	pr.FullDays = s.days(pr.Full.From, pr.Full.To)
	// Clamped to the whole period: a time in a skipped hour can put an
	// end's day after the whole period's last day.
	pr.Days = min(s.days(p.From, p.To), pr.FullDays)
	if p.From.Before(p.To) {
		pr.DaysToEnd = min(s.days(p.From, pr.Full.To), pr.FullDays)
	}
	return pr, true
}

// days returns the number of schedule days [from, to) touches.
func (s Schedule) days(from, to time.Time) int {
	if !from.Before(to) {
		return 0
	}
	return s.day(to.Add(-time.Nanosecond)) - s.day(from) + 1
}

// day numbers the schedule day holding t: its local date, or the day
// before when t is earlier than that date's anchor time of day (resolved
// through DST changes as boundaries are, by wallClock.in).
func (s Schedule) day(t time.Time) int {
	local := wallClockOf(t.In(s.loc))
	d := civilDay(local)
	if t.Before(s.anchor.withDate(local.year, local.month, local.day).in(s.loc)) {
		d--
	}
	return d
}

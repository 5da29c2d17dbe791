package rating

import (
	"fmt"
	"time"

	"github.com/tally-oss/tally/schemas"
)

// Schedule is the sequence of billing periods of one subscription on one
// plan interval. Period k (k >= 0) starts at start(k): the first period
// starts at SubscriptionAt, every later one at a boundary computed from a
// fixed local anchor (date and time of day) plus k intervals. Boundaries
// are always computed from the anchor, never by stepping from the previous
// boundary, so that a day clamped in a short month (Jan 31 -> Feb 28) comes
// back in the next long one (Mar 31).
//
// Boundaries are wall-clock times in the subscription's zone, so periods
// are not multiples of 24 hours across a DST change (March in New York
// is 743 hours). A boundary whose wall time occurs twice is its first
// occurrence; one whose wall time is skipped (02:30 on the day clocks go
// forward) moves forward by the length of the gap (03:30). wallclock.go
// says why this is not left to time.Date.
//
// The last period ends at the subscription's end (schemas.Subscription
// EndAt) when that is earlier than its natural end. A subscription that ends
// at or before it starts has a single empty period [SubscriptionAt,
// SubscriptionAt). The zero Schedule has no periods to give: make one
// with NewSchedule.
type Schedule struct {
	from time.Time // SubscriptionAt: the start of period 0
	end  time.Time // the subscription's end, when ends
	ends bool
	loc  *time.Location

	step   intervalStep
	anchor wallClock // the local date and time boundary k counts from
}

// intervalStep is how far apart two boundaries are: a number of weeks or
// a number of months, never both.
type intervalStep struct {
	weeks, months int
}

// intervalSteps is the one table of billing intervals; an interval missing
// here is an error, never a default.
var intervalSteps = map[schemas.Interval]intervalStep{
	schemas.IntervalWeekly:    {weeks: 1},
	schemas.IntervalMonthly:   {months: 1},
	schemas.IntervalQuarterly: {months: 3},
	schemas.IntervalYearly:    {months: 12},
}

// billingAnchors is the one table of billing times: where boundary 0 is,
// given the subscription's local start. Boundary 0 itself is never a
// period start (period 0 starts at SubscriptionAt); boundaries 1, 2, ...
// are.
var billingAnchors = map[schemas.BillingTime]func(start wallClock, step intervalStep) wallClock{
	// Calendar: 00:00 on the first day of the calendar week (Monday),
	// month, quarter (Jan, Apr, Jul, Oct) or year holding the start.
	schemas.BillingCalendar: func(start wallClock, step intervalStep) wallClock {
		if step.weeks > 0 {
			sinceMonday := (int(start.weekday) + 6) % 7
			return wallClock{year: start.year, month: start.month, day: start.day - sinceMonday}.normalized()
		}
		firstMonth := start.month - time.Month((int(start.month)-1)%step.months)
		return wallClock{year: start.year, month: firstMonth, day: 1}
	},
	// Anniversary: the start itself, day and time of day; monthly and
	// longer boundaries clamp the day to the month's last day.
	schemas.BillingAnniversary: func(start wallClock, _ intervalStep) wallClock {
		return start
	},
}

// NewSchedule returns the billing periods of sub on a plan billed every
// interval, in loc (the subscription's time zone, already loaded: this
// package reads no time zone database). It fails for an interval or
// billing time this package does not know, and for a nil loc.
func NewSchedule(sub schemas.Subscription, interval schemas.Interval, loc *time.Location) (Schedule, error) {
	step, ok := intervalSteps[interval]
	if !ok {
		return Schedule{}, fmt.Errorf("%w: interval %q", ErrInvalidSchedule, interval)
	}
	anchorOf, ok := billingAnchors[sub.BillingTime]
	if !ok {
		return Schedule{}, fmt.Errorf("%w: billing time %q", ErrInvalidSchedule, sub.BillingTime)
	}
	if loc == nil {
		return Schedule{}, fmt.Errorf("%w: nil location", ErrInvalidSchedule)
	}
	s := Schedule{from: sub.SubscriptionAt.In(loc), loc: loc, step: step}
	if end, ok := sub.EndAt(); ok {
		s.end, s.ends = end.In(loc), true
	}
	s.anchor = anchorOf(wallClockOf(sub.SubscriptionAt.In(loc)), step)
	return s, nil
}

// start returns the start of period k >= 0: boundary k, but for the
// first period, which starts at SubscriptionAt.
func (s Schedule) start(k int) time.Time {
	if k == 0 {
		return s.from
	}
	return s.boundary(k)
}

// boundary returns boundary k >= 0: the anchor plus k intervals. Boundary
// 0 is the start of the first natural period, at or before SubscriptionAt.
func (s Schedule) boundary(k int) time.Time {
	a := s.anchor
	if s.step.weeks > 0 {
		return a.withDate(a.year, a.month, a.day+7*k*s.step.weeks).in(s.loc)
	}
	year, month := addMonths(a.year, a.month, k*s.step.months)
	day := min(a.day, daysIn(year, month))
	return a.withDate(year, month, day).in(s.loc)
}

// estimate returns a period index close to the one holding t (within one
// or two), from local calendar arithmetic; index corrects it.
func (s Schedule) estimate(t time.Time) int {
	local := wallClockOf(t.In(s.loc))
	if s.step.weeks > 0 {
		return floorDiv(civilDay(local)-civilDay(s.anchor), 7*s.step.weeks)
	}
	months := (local.year-s.anchor.year)*12 + int(local.month-s.anchor.month)
	return floorDiv(months, s.step.months)
}

// index returns k such that start(k) <= t < start(k+1), for t >= from.
func (s Schedule) index(t time.Time) int {
	k := max(0, s.estimate(t))
	for k > 0 && s.start(k).After(t) {
		k--
	}
	for !s.start(k + 1).After(t) {
		k++
	}
	return k
}

// period returns period k, cut at the subscription's end.
func (s Schedule) period(k int) Period {
	p := Period{From: s.start(k), To: s.start(k + 1)}
	if s.ends && s.end.Before(p.To) {
		p.To = s.end
	}
	return p
}

func addMonths(year int, month time.Month, months int) (int, time.Month) {
	m := int(month) - 1 + months
	return year + floorDiv(m, 12), time.Month(m - 12*floorDiv(m, 12) + 1)
}

func daysIn(year int, month time.Month) int {
	return time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// civilDay numbers local dates consecutively (days since 1970-01-01).
func civilDay(w wallClock) int {
	return int(time.Date(w.year, w.month, w.day, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

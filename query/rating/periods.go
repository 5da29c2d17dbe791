package rating

import (
	"fmt"
	"time"

	"github.com/tally-oss/tally/schemas"
)

// Period is a billing period, half-open: [From, To). From and To are in
// the schedule's location.
type Period struct {
	From, To time.Time
}

// Contains reports whether t is in [From, To).
func (p Period) Contains(t time.Time) bool {
	return !t.Before(p.From) && t.Before(p.To)
}

// MaxPeriods bounds what one Periods call returns, so that a subscription
// from year 1 cannot make a caller build millions of weekly periods. A
// caller that needs more asks again from the last period's To.
const MaxPeriods = 1000

// At returns the billing period holding t. Before the subscription starts
// that is the first period; at or after its end, the last.
func (s Schedule) At(t time.Time) Period {
	if s.ends && !s.end.After(s.from) {
		return Period{From: s.from, To: s.from}
	}
	switch {
	case t.Before(s.from):
		return s.period(0)
	case s.ends && !t.Before(s.end):
		// The period holding the last instant of the subscription.
		return s.period(s.index(s.end.Add(-time.Nanosecond)))
	}
	return s.period(s.index(t))
}

// Periods returns every billing period that overlaps [from, to), in
// order: none before the subscription starts or after it ends, and at
// most MaxPeriods.
func (s Schedule) Periods(from, to time.Time) []Period {
	if from.Before(s.from) {
		from = s.from
	}
	if s.ends && s.end.Before(to) {
		to = s.end
	}
	if !from.Before(to) {
		return nil
	}
	var periods []Period
	for k := s.index(from); len(periods) < MaxPeriods; k++ {
		p := s.period(k)
		periods = append(periods, p)
		if !p.To.Before(to) {
			break
		}
	}
	return periods
}

// Previous returns the period before the one At(t) returns; ok is false
// when that is the first period.
func (s Schedule) Previous(t time.Time) (p Period, ok bool) {
	current := s.At(t)
	if !current.From.After(s.from) {
		return Period{}, false
	}
	return s.At(current.From.Add(-time.Nanosecond)), true
}

// PeriodAt returns the billing period of sub holding t; see Schedule.At.
//
// It panics when NewSchedule fails (an interval or billing time this
// package does not know, a nil loc): callers pass validated catalog
// objects, and those that cannot promise it call NewSchedule for the error.
func PeriodAt(sub schemas.Subscription, interval schemas.Interval, loc *time.Location, t time.Time) Period {
	return mustSchedule(sub, interval, loc).At(t)
}

// Periods returns every billing period of sub overlapping [from, to); see
// Schedule.Periods. It panics where PeriodAt does.
func Periods(sub schemas.Subscription, interval schemas.Interval, loc *time.Location, from, to time.Time) []Period {
	return mustSchedule(sub, interval, loc).Periods(from, to)
}

// Previous returns the period of sub before the one holding t; see
// Schedule.Previous. It panics where PeriodAt does.
func Previous(sub schemas.Subscription, interval schemas.Interval, loc *time.Location, t time.Time) (Period, bool) {
	return mustSchedule(sub, interval, loc).Previous(t)
}

func mustSchedule(sub schemas.Subscription, interval schemas.Interval, loc *time.Location) Schedule {
	s, err := NewSchedule(sub, interval, loc)
	if err != nil {
		panic(fmt.Sprintf("rating: subscription %q: %v", sub.ExternalID, err))
	}
	return s
}

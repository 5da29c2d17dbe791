package rating_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tally-oss/tally/query/rating"
	"github.com/tally-oss/tally/schemas"
)

// Zones with DST rules that have bitten billing code: gaps and repeated
// hours at 02:00, at midnight (Santiago, Asunción, Havana), of 30 minutes
// (Lord Howe), with a 45-minute offset (Chatham), negative DST (Dublin),
// a skipped day (Apia, December 30th 2011) and none at all.
var propertyZones = []string{
	"UTC", "America/New_York", "Europe/Berlin", "America/Santiago", "America/Asuncion",
	"America/Havana", "Australia/Lord_Howe", "Pacific/Chatham", "Europe/Dublin",
	"Pacific/Apia", "Asia/Kolkata", "Australia/Sydney",
}

// TestSchedulesHoldTogether checks, for random subscriptions over three
// years, what every schedule promises: periods start at subscription_at,
// follow each other without gap or overlap, each boundary is where the
// billing time puts it on the local wall clock, and At and Previous agree
// with Periods.
func TestSchedulesHoldTogether(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	days := []int{1, 2, 15, 28, 29, 30, 31}
	clocks := []time.Duration{0, 30 * time.Minute, 90 * time.Minute, 150 * time.Minute, 12 * time.Hour, 23*time.Hour + 45*time.Minute}
	years := []int{2011, 2023, 2024, 2026}
	for range 600 {
		zone := propertyZones[rng.IntN(len(propertyZones))]
		loc := mustLocation(t, zone)
		interval := schemas.Intervals[rng.IntN(len(schemas.Intervals))]
		billing := schemas.BillingTimes[rng.IntN(len(schemas.BillingTimes))]
		year, month := years[rng.IntN(len(years))], time.Month(1+rng.IntN(12))
		day := min(days[rng.IntN(len(days))], time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day())
		clock := clocks[rng.IntN(len(clocks))]
		start := wallTime{year, month, day, clock}.resolve(loc)
		sub := schemas.Subscription{SubscriptionAt: start, BillingTime: billing}
		horizon := start.AddDate(3, 0, 0)
		if rng.IntN(2) == 0 {
			end := start.Add(time.Duration(rng.Int64N(int64(3 * 365 * 24 * time.Hour))))
			sub.TerminatedAt = &end
		}
		name := fmt.Sprintf("%s %s %s from %s", zone, billing, interval, start.Format(time.RFC3339))
		if sub.TerminatedAt != nil {
			name += " to " + sub.TerminatedAt.Format(time.RFC3339)
		}
		t.Run(name, func(t *testing.T) {
			checkSchedule(t, sub, interval, loc, horizon)
		})
	}
}

func checkSchedule(t *testing.T, sub schemas.Subscription, interval schemas.Interval, loc *time.Location, horizon time.Time) {
	s, err := rating.NewSchedule(sub, interval, loc)
	if err != nil {
		t.Fatal(err)
	}
	periods := s.Periods(sub.SubscriptionAt.Add(-365*24*time.Hour), horizon)
	if len(periods) == 0 || !periods[0].From.Equal(sub.SubscriptionAt) {
		t.Fatalf("periods do not start at subscription_at: %v", periods)
	}
	anchor := wallTimeOf(sub.SubscriptionAt.In(loc))
	for i, p := range periods {
		if !p.From.Before(p.To) {
			t.Fatalf("period %d is empty or reversed: %s", i, formatPeriod(p))
		}
		if i > 0 && !periods[i-1].To.Equal(p.From) {
			t.Fatalf("periods %d and %d do not meet: %s, %s", i-1, i, formatPeriod(periods[i-1]), formatPeriod(p))
		}
		for _, at := range []time.Time{p.From, p.From.Add(p.To.Sub(p.From) / 2), p.To.Add(-time.Nanosecond)} {
			if got := s.At(at); !got.From.Equal(p.From) || !got.To.Equal(p.To) {
				t.Fatalf("At(%s) = %s, Periods has %s", at, formatPeriod(got), formatPeriod(p))
			}
		}
		prev, ok := s.Previous(p.From)
		if ok != (i > 0) || (ok && (!prev.From.Equal(periods[i-1].From) || !prev.To.Equal(periods[i-1].To))) {
			t.Fatalf("Previous(%s) = %s, %v", p.From, formatPeriod(prev), ok)
		}
		if i > 0 {
			want := expectedBoundary(sub.BillingTime, interval, anchor, i)
			checkBoundary(t, p.From, want, loc)
		}
		checkProration(t, s, p, interval, i == 0 && sub.BillingTime == schemas.BillingCalendar, i == len(periods)-1)
	}
	last := periods[len(periods)-1]
	if end, ok := sub.EndAt(); ok && end.Before(horizon) {
		if !last.To.Equal(end) {
			t.Fatalf("the last period %s does not end at the subscription's end %s", formatPeriod(last), end)
		}
		if got := s.At(end.Add(time.Hour)); !got.From.Equal(last.From) || !got.To.Equal(last.To) {
			t.Fatalf("At after the end = %s, want the last period %s", formatPeriod(got), formatPeriod(last))
		}
	}
}

// wallTime is a local date and time of day in the property test's own
// terms, independent of the package's.
type wallTime struct {
	year  int
	month time.Month
	day   int
	clock time.Duration // since midnight
}

func wallTimeOf(t time.Time) wallTime {
	year, month, day := t.Date()
	midnight := time.Date(year, month, day, 0, 0, 0, 0, time.UTC)
	asUTC := time.Date(year, month, day, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	return wallTime{year, month, day, asUTC.Sub(midnight)}
}

func (w wallTime) asUTC() time.Time {
	return time.Date(w.year, w.month, w.day, 0, 0, 0, 0, time.UTC).Add(w.clock)
}

// occurrences lists, in order, the instants at which loc's clock reads w,
// by trying every instant on a 15-minute grid within 15 hours of it (every
// offset in these zones is a multiple of 15 minutes).
func (w wallTime) occurrences(loc *time.Location) []time.Time {
	var found []time.Time
	for offset := 15 * time.Hour; offset >= -15*time.Hour; offset -= 15 * time.Minute {
		t := w.asUTC().Add(-offset)
		if wallTimeOf(t.In(loc)) == w {
			found = append(found, t)
		}
	}
	return found
}

// resolve picks the instant the test's subscriptions start at: the first
// occurrence of w, or just past a gap.
func (w wallTime) resolve(loc *time.Location) time.Time {
	if found := w.occurrences(loc); len(found) > 0 {
		return found[0].In(loc)
	}
	return w.asUTC().Add(time.Hour).In(loc) // in a gap of at most an hour for these starts, or Apia's day
}

// expectedBoundary is where period i >= 1 starts on the wall clock,
// restated from the billing rules.
func expectedBoundary(billing schemas.BillingTime, interval schemas.Interval, anchor wallTime, i int) wallTime {
	months := map[schemas.Interval]int{schemas.IntervalMonthly: 1, schemas.IntervalQuarterly: 3, schemas.IntervalYearly: 12}[interval]
	switch billing {
	case schemas.BillingCalendar:
		if interval == schemas.IntervalWeekly {
			monday := anchor.asUTC().AddDate(0, 0, -((int(anchor.asUTC().Weekday()) + 6) % 7))
			return wallTimeOf(time.Date(monday.Year(), monday.Month(), monday.Day()+7*i, 0, 0, 0, 0, time.UTC))
		}
		first := time.Month((int(anchor.month)-1)/months*months + 1)
		return wallTimeOf(time.Date(anchor.year, first+time.Month(months*i), 1, 0, 0, 0, 0, time.UTC))
	case schemas.BillingAnniversary:
		if interval == schemas.IntervalWeekly {
			d := time.Date(anchor.year, anchor.month, anchor.day+7*i, 0, 0, 0, 0, time.UTC)
			return wallTime{d.Year(), d.Month(), d.Day(), anchor.clock}
		}
		m := time.Date(anchor.year, anchor.month+time.Month(months*i), 1, 0, 0, 0, 0, time.UTC)
		last := time.Date(m.Year(), m.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
		return wallTime{m.Year(), m.Month(), min(anchor.day, last), anchor.clock}
	}
	panic("unknown billing time " + billing)
}

// checkBoundary: a boundary is the first instant the clock reads want;
// when the clock never reads want (a DST gap), it is later on the clock.
func checkBoundary(t *testing.T, got time.Time, want wallTime, loc *time.Location) {
	t.Helper()
	found := want.occurrences(loc)
	gotWall := wallTimeOf(got.In(loc))
	switch {
	case len(found) > 0 && !got.Equal(found[0]):
		t.Fatalf("boundary %s, want the first time the clock reads %v: %s", got, want, found[0].In(loc))
	case len(found) == 0 && !gotWall.asUTC().After(want.asUTC()):
		t.Fatalf("boundary %s: %v does not occur in %s, want a later wall time", got, want, loc)
	}
}

// wholeDays is how many days a whole period of each interval can have.
var wholeDays = map[schemas.Interval][2]int{
	schemas.IntervalWeekly:    {7, 7},
	schemas.IntervalMonthly:   {28, 31},
	schemas.IntervalQuarterly: {89, 92},
	schemas.IntervalYearly:    {365, 366},
}

// checkProration: every period of a schedule is a share of a whole
// period that holds it, of as many days as its interval has; only a
// calendar subscription's first period and a last one may be a part of
// it, every other period is its own whole period.
func checkProration(t *testing.T, s rating.Schedule, p rating.Period, interval schemas.Interval, first, last bool) {
	t.Helper()
	pr, ok := s.Proration(p)
	if !ok {
		t.Fatalf("Proration(%s): not a period of the schedule", formatPeriod(p))
	}
	if bounds := wholeDays[interval]; pr.FullDays < bounds[0] || pr.FullDays > bounds[1] {
		t.Fatalf("the whole period %s of %s has %d days", formatPeriod(pr.Full), formatPeriod(p), pr.FullDays)
	}
	if pr.Full.From.After(p.From) || pr.Full.To.Before(p.To) || !(pr.Days > 0 && pr.Days <= pr.DaysToEnd && pr.DaysToEnd <= pr.FullDays) {
		t.Fatalf("Proration(%s) = %s, %d/%d days, %d to the end", formatPeriod(p), formatPeriod(pr.Full), pr.Days, pr.FullDays, pr.DaysToEnd)
	}
	if !first && !pr.Full.From.Equal(p.From) {
		t.Fatalf("period %s starts within its whole period %s", formatPeriod(p), formatPeriod(pr.Full))
	}
	if !first && !last && (!pr.Full.To.Equal(p.To) || pr.Days != pr.FullDays) {
		t.Fatalf("period %s is not whole: %s, %d/%d days", formatPeriod(p), formatPeriod(pr.Full), pr.Days, pr.FullDays)
	}
}

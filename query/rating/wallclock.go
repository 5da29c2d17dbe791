package rating

import "time"

// wallClock is a local date and time of day, without a zone: what a
// clock on the customer's wall reads.
type wallClock struct {
	year                    int
	month                   time.Month
	day                     int
	hour, minute, sec, nsec int
	weekday                 time.Weekday // set by wallClockOf and normalized
}

func wallClockOf(t time.Time) wallClock {
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	return wallClock{year, month, day, hour, minute, sec, t.Nanosecond(), t.Weekday()}
}

// withDate returns w on another date, keeping its time of day.
func (w wallClock) withDate(year int, month time.Month, day int) wallClock {
	w.year, w.month, w.day = year, month, day
	return w
}

// asUTC reads the wall clock as if it were UTC; it normalises overflowing
// fields (day 35 of March is April 4th) the way time.Date does.
func (w wallClock) asUTC() time.Time {
	return time.Date(w.year, w.month, w.day, w.hour, w.minute, w.sec, w.nsec, time.UTC)
}

func (w wallClock) normalized() wallClock {
	return wallClockOf(w.asUTC())
}

// in returns the instant at which the wall clock in loc reads w.
//
// time.Date does not say which instant it picks when a DST change makes a
// wall time ambiguous or non-existent (it differs by zone: 02:30 on the
// spring-forward day is 01:30 EST in America/New_York but 03:30 CEST in
// Europe/Berlin), so billing boundaries are resolved here, explicitly:
//
//   - A wall time that occurs twice (the repeated hour when clocks go
//     back) is its first occurrence: a period starts as soon as the clock
//     shows its start.
//   - A wall time that does not occur (the skipped hour when clocks go
//     forward, or a midnight skipped by zones that change at 00:00) moves
//     forward by the length of the gap: 02:30 on the spring-forward day in
//     New York is 03:30 EDT, 00:00 on a day Santiago skips is 01:00.
//
// It assumes a zone does not change its offset twice within 24 hours
// either side of the wall time (no current tz rule does).
func (w wallClock) in(loc *time.Location) time.Time {
	wall := w.asUTC()
	norm := wallClockOf(wall)
	// The instant is wall minus the offset in force then; the offsets 24
	// hours either side are the only candidates.
	_, before := wall.Add(-24 * time.Hour).In(loc).Zone()
	_, after := wall.Add(24 * time.Hour).In(loc).Zone()
	var first time.Time
	found := false
	for _, offset := range [2]int{before, after} {
		t := wall.Add(-time.Duration(offset) * time.Second).In(loc)
		if wallClockOf(t) == norm && (!found || t.Before(first)) {
			first, found = t, true
		}
	}
	if found {
		return first
	}
	// In a gap: read with the offset before the gap, which lands past the
	// gap by as much as the wall time was into it.
	return wall.Add(-time.Duration(before) * time.Second).In(loc)
}

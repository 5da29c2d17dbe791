package usage

import (
	"time"
)

// WindowSize is the width of the tumbling windows usage is reported in.
// The zero value means one window spanning the whole queried range.
type WindowSize string

// The window sizes a query can ask for.
const (
	WindowNone   WindowSize = ""
	WindowMinute WindowSize = "MINUTE"
	WindowHour   WindowSize = "HOUR"
	WindowDay    WindowSize = "DAY"
	WindowMonth  WindowSize = "MONTH"
)

// WindowSizes lists the window sizes a query may name.
var WindowSizes = []WindowSize{WindowMinute, WindowHour, WindowDay, WindowMonth}

// sqlExpr is the ClickHouse expression of a row's window; its one
// parameter is the time zone. DAY and MONTH yield a Date (a calendar day in
// that zone), which fromDB turns into local midnight: the only way to get
// the right instant on a day that is 23 or 25 hours long.
func (w WindowSize) sqlExpr() string {
	switch w {
	case WindowMinute:
		return "toStartOfMinute(time, ?)"
	case WindowHour:
		return "toStartOfHour(time, ?)"
	case WindowDay:
		return "toDate(time, ?)"
	case WindowMonth:
		return "toStartOfMonth(time, ?)"
	}
	return ""
}

// isDate reports whether ClickHouse returns the window as a Date.
func (w WindowSize) isDate() bool { return w == WindowDay || w == WindowMonth }

// fromDB turns the window value read from ClickHouse into the window's
// first instant in loc. A Date arrives as midnight UTC of that calendar
// day; only its year, month and day mean anything.
func (w WindowSize) fromDB(v time.Time, loc *time.Location) time.Time {
	if w.isDate() {
		y, m, d := v.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, loc)
	}
	return v.In(loc)
}

// start returns the first instant of the window holding t, as ClickHouse
// computes it. Minutes and hours subtract the local wall-clock remainder
// rather than rebuilding the time with time.Date, which is ambiguous in the
// repeated hour when DST ends; that keeps a +05:30 zone's hours on :30 UTC.
func (w WindowSize) Start(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	switch w {
	case WindowMinute:
		return t.Add(-time.Duration(t.Second())*time.Second - time.Duration(t.Nanosecond()))
	case WindowHour:
		return t.Add(-time.Duration(t.Minute())*time.Minute - time.Duration(t.Second())*time.Second - time.Duration(t.Nanosecond()))
	case WindowDay:
		y, m, d := t.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, loc)
	case WindowMonth:
		y, m, _ := t.Date()
		return time.Date(y, m, 1, 0, 0, 0, 0, loc)
	}
	return t
}

// end returns the end of the window that begins at start. Days and months
// step the calendar to the next local midnight (as AddDate would), so a DST
// day ends after 23 or 25 hours. Building midnight afresh rather than
// calling AddDate keeps it right after a day that began at 01:00 because
// its midnight did not exist.
func (w WindowSize) End(start time.Time) time.Time {
	y, m, d := start.Date()
	switch w {
	case WindowMinute:
		return start.Add(time.Minute)
	case WindowHour:
		return start.Add(time.Hour)
	case WindowDay:
		return time.Date(y, m, d+1, 0, 0, 0, 0, start.Location())
	case WindowMonth:
		return time.Date(y, m+1, 1, 0, 0, 0, 0, start.Location())
	}
	return start
}

// CountWindows returns how many windows [from, to) touches, counting no
// further than limit+1 so that a huge range costs nothing to reject.
func (w WindowSize) CountWindows(from, to time.Time, loc *time.Location, limit int) int {
	if w == WindowNone {
		return 1
	}
	n := 0
	for s := w.Start(from, loc); s.Before(to) && n <= limit; s = w.End(s) {
		n++
	}
	return n
}

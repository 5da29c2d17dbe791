package query

import (
	"fmt"
	"net/url"
	"testing"
	"time"
)

// TestNewYorkWindowsAcrossDST: DAY and MONTH windows follow New York's
// calendar: the spring-forward day lasts 23 hours, the fall-back day 25,
// and an event late on the last evening of a month belongs to that month
// although it is already the next month in UTC.
func TestNewYorkWindowsAcrossDST(t *testing.T) {
	e := newEnv(t)
	m := e.createMeter(keyAcme, `{"key": "tokens", "event_type": "llm", "aggregation": "SUM", "value_property": "$.v"}`)
	var rows []reading
	for i, ev := range []struct{ time, value string }{
		{"2024-03-01T04:59:59Z", "1"},   // Feb 29 23:59:59 EST
		{"2024-03-01T05:00:00Z", "2"},   // Mar 1 00:00 EST
		{"2024-03-09T12:00:00Z", "10"},  // Mar 9 07:00 EST
		{"2024-03-10T04:59:59Z", "20"},  // Mar 9 23:59:59 EST
		{"2024-03-10T05:00:00Z", "40"},  // Mar 10 00:00 EST
		{"2024-03-11T03:59:59Z", "80"},  // Mar 10 23:59:59 EDT
		{"2024-03-11T04:00:00Z", "160"}, // Mar 11 00:00 EDT
		{"2024-04-01T03:59:59Z", "4"},   // Mar 31 23:59:59 EDT
		{"2024-04-01T04:00:00Z", "8"},   // Apr 1 00:00 EDT
		{"2024-11-03T04:00:00Z", "1"},   // Nov 3 00:00 EDT
		{"2024-11-04T04:59:59Z", "2"},   // Nov 3 23:59:59 EST
		{"2024-11-04T05:00:00Z", "4"},   // Nov 4 00:00 EST
	} {
		rows = append(rows, reading{org: "acme", meter: "tokens", revision: m.Revision, customer: "c1",
			eventID: fmt.Sprintf("e%02d", i), time: at(t, ev.time), value: ev.value})
	}
	e.insert(rows...)

	u := e.query(keyAcme, "tokens", "window_size=DAY&window_time_zone=America/New_York&from="+
		url.QueryEscape("2024-03-09T00:00:00-05:00")+"&to="+url.QueryEscape("2024-03-12T00:00:00-04:00"))
	if u.From != "2024-03-09T00:00:00-05:00" || u.To != "2024-03-12T00:00:00-04:00" ||
		u.WindowSize == nil || *u.WindowSize != "DAY" || u.WindowTimeZone != "America/New_York" {
		t.Errorf("header fields: %+v", u)
	}
	wantWindows(t, "March DST days", u,
		"2024-03-09T00:00:00-05:00 2024-03-10T00:00:00-05:00 30",
		"2024-03-10T00:00:00-05:00 2024-03-11T00:00:00-04:00 120", // 23 hours
		"2024-03-11T00:00:00-04:00 2024-03-12T00:00:00-04:00 160")

	// The same readings by UTC day fall differently.
	u = e.query(keyAcme, "tokens", "window_size=DAY&from=2024-03-09T00:00:00Z&to=2024-03-12T00:00:00Z")
	wantWindows(t, "UTC days", u,
		"2024-03-09T00:00:00Z 2024-03-10T00:00:00Z 10",
		"2024-03-10T00:00:00Z 2024-03-11T00:00:00Z 60",
		"2024-03-11T00:00:00Z 2024-03-12T00:00:00Z 240")

	u = e.query(keyAcme, "tokens", "window_size=MONTH&window_time_zone=America/New_York&from="+
		url.QueryEscape("2024-02-01T00:00:00-05:00")+"&to="+url.QueryEscape("2024-05-01T00:00:00-04:00"))
	wantWindows(t, "months", u,
		"2024-02-01T00:00:00-05:00 2024-03-01T00:00:00-05:00 1",
		"2024-03-01T00:00:00-05:00 2024-04-01T00:00:00-04:00 316",
		"2024-04-01T00:00:00-04:00 2024-05-01T00:00:00-04:00 8")

	u = e.query(keyAcme, "tokens", "window_size=DAY&window_time_zone=America/New_York&from=2024-11-03T04:00:00Z&to=2024-11-05T00:00:00Z")
	wantWindows(t, "November fall-back day", u,
		"2024-11-03T00:00:00-04:00 2024-11-04T00:00:00-05:00 3", // 25 hours
		"2024-11-04T00:00:00-05:00 2024-11-05T00:00:00-05:00 4")
}

// TestKolkataHourWindows: hours in a +05:30 zone start at half past the
// UTC hour.
func TestKolkataHourWindows(t *testing.T) {
	e := newEnv(t)
	m := e.createMeter(keyAcme, `{"key": "calls", "event_type": "api", "aggregation": "COUNT"}`)
	var rows []reading
	for i, ts := range []string{
		"2024-03-10T05:29:59Z",           // 10:59:59 IST
		"2024-03-10T05:30:00Z",           // 11:00 IST
		"2024-03-10T06:29:59.999999999Z", // 11:59:59.999999999 IST
		"2024-03-10T06:30:00Z",           // 12:00 IST
		"2024-03-10T06:45:00Z",
	} {
		rows = append(rows, reading{org: "acme", meter: "calls", revision: m.Revision, customer: "c1",
			eventID: fmt.Sprintf("e%d", i), time: at(t, ts), value: "1"})
	}
	e.insert(rows...)
	u := e.query(keyAcme, "calls", "window_size=HOUR&window_time_zone=Asia/Kolkata&from=2024-03-10T04:00:00Z&to=2024-03-10T08:00:00Z")
	wantWindows(t, "IST hours", u,
		"2024-03-10T10:00:00+05:30 2024-03-10T11:00:00+05:30 1",
		"2024-03-10T11:00:00+05:30 2024-03-10T12:00:00+05:30 2",
		"2024-03-10T12:00:00+05:30 2024-03-10T13:00:00+05:30 2")
	u = e.query(keyAcme, "calls", "window_size=HOUR&from=2024-03-10T04:00:00Z&to=2024-03-10T08:00:00Z")
	wantWindows(t, "UTC hours", u,
		"2024-03-10T05:00:00Z 2024-03-10T06:00:00Z 2",
		"2024-03-10T06:00:00Z 2024-03-10T07:00:00Z 3")
	u = e.query(keyAcme, "calls", "window_size=MINUTE&window_time_zone=Asia/Kolkata&from=2024-03-10T06:29:00Z&to=2024-03-10T06:31:00Z")
	wantWindows(t, "IST minutes", u,
		"2024-03-10T11:59:00+05:30 2024-03-10T12:00:00+05:30 1",
		"2024-03-10T12:00:00+05:30 2024-03-10T12:01:00+05:30 1")
}

func wantWindows(t *testing.T, what string, u usageBodyJSON, want ...string) {
	t.Helper()
	var got []string
	for _, d := range u.Data {
		got = append(got, d.WindowStart+" "+d.WindowEnd+" "+d.Value.String())
	}
	wantLines(t, what, got, want...)
}

// TestFractionalSecondBounds: [from, to) is exact to the nanosecond,
// though the time column holds whole seconds.
func TestFractionalSecondBounds(t *testing.T) {
	e := newEnv(t)
	m := e.createMeter(keyAcme, `{"key": "tokens", "event_type": "llm", "aggregation": "SUM", "value_property": "$.v"}`)
	var rows []reading
	for i, r := range []struct{ time, value string }{
		{"2024-03-05T10:00:00.4Z", "1"},
		{"2024-03-05T10:00:00.5Z", "2"},
		{"2024-03-05T10:00:00.6Z", "4"},
		{"2024-03-05T10:00:01Z", "8"},
	} {
		rows = append(rows, reading{org: "acme", meter: "tokens", revision: m.Revision, customer: "c1",
			eventID: string(rune('a' + i)), time: at(t, r.time), value: r.value})
	}
	e.insert(rows...)
	for _, tt := range []struct{ from, to, want string }{
		{"2024-03-05T10:00:00.5Z", "2024-03-05T10:00:01Z", "6"},
		{"2024-03-05T10:00:00.4Z", "2024-03-05T10:00:00.6Z", "3"},
		{"2024-03-05T10:00:00.500000001Z", "2024-03-05T10:00:01.000000001Z", "12"},
		{"2024-03-05T15:30:00.4+05:30", "2024-03-05T10:00:00.400000001Z", "1"},
	} {
		u := e.query(keyAcme, "tokens", "from="+url.QueryEscape(tt.from)+"&to="+url.QueryEscape(tt.to))
		if len(u.Data) != 1 || u.Data[0].Value.String() != tt.want {
			t.Errorf("[%s, %s): %v, want %s", tt.from, tt.to, u.lines(), tt.want)
		}
	}
}

// TestUsageDefaultRange: without from and to, a query covers the current
// month so far, in the requested zone.
func TestUsageDefaultRange(t *testing.T) {
	e := newEnv(t)
	now := at(t, "2024-03-15T12:00:00.123Z")
	e.svc.usageHTTP.now = func() time.Time { return now }
	m := e.createMeter(keyAcme, `{"key": "calls", "event_type": "api", "aggregation": "COUNT"}`)
	for i, ts := range []string{"2024-02-29T23:00:00Z", "2024-03-01T01:00:00Z", "2024-03-01T06:00:00Z", "2024-03-15T12:00:00.123Z"} {
		e.insert(reading{org: "acme", meter: "calls", revision: m.Revision, customer: "c1", eventID: string(rune('a' + i)), time: at(t, ts), value: "1"})
	}
	u := e.query(keyAcme, "calls", "")
	if u.From != "2024-03-01T00:00:00Z" || u.To != "2024-03-15T12:00:00.123Z" || u.WindowSize != nil || u.WindowTimeZone != "UTC" {
		t.Errorf("UTC defaults: %+v", u)
	}
	wantLines(t, "UTC month so far", u.lines(), "2024-03-01T00:00:00Z|2")
	u = e.query(keyAcme, "calls", "window_time_zone=America/New_York")
	if u.From != "2024-03-01T00:00:00-05:00" || u.To != "2024-03-15T08:00:00.123-04:00" {
		t.Errorf("New York defaults: %+v", u)
	}
	wantLines(t, "New York month so far", u.lines(), "2024-03-01T00:00:00-05:00|1")
}

// TestNewYorkRepeatedHour: when DST ends, 01:00-02:00 happens twice in New
// York; each is its own HOUR window with its own offset.
func TestNewYorkRepeatedHour(t *testing.T) {
	e := newEnv(t)
	m := e.createMeter(keyAcme, `{"key": "calls", "event_type": "api", "aggregation": "COUNT"}`)
	var rows []reading
	for i, ts := range []string{"2024-11-03T04:59:59Z", "2024-11-03T05:30:00Z", "2024-11-03T06:10:00Z", "2024-11-03T06:50:00Z", "2024-11-03T07:00:00Z"} {
		rows = append(rows, reading{org: "acme", meter: "calls", revision: m.Revision, customer: "c1",
			eventID: fmt.Sprintf("e%d", i), time: at(t, ts), value: "1"})
	}
	e.insert(rows...)
	u := e.query(keyAcme, "calls", "window_size=HOUR&window_time_zone=America/New_York&from=2024-11-03T04:00:00Z&to=2024-11-03T08:00:00Z")
	wantWindows(t, "repeated hour", u,
		"2024-11-03T00:00:00-04:00 2024-11-03T01:00:00-04:00 1",
		"2024-11-03T01:00:00-04:00 2024-11-03T01:00:00-05:00 1",
		"2024-11-03T01:00:00-05:00 2024-11-03T02:00:00-05:00 2",
		"2024-11-03T02:00:00-05:00 2024-11-03T03:00:00-05:00 1")
}

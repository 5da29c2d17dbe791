package rating_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/query/rating"
	"github.com/tally-oss/tally/schemas"
)

// subscriptionSpec is a subscription as the period tables write it.
type subscriptionSpec struct {
	zone       string
	billing    schemas.BillingTime
	interval   schemas.Interval
	start      string // subscription_at
	ending     string // ending_at, if any
	terminated string // terminated_at, if any
}

func (spec subscriptionSpec) schedule(t *testing.T) rating.Schedule {
	t.Helper()
	sub := schemas.Subscription{
		ExternalID:     "sub",
		SubscriptionAt: instant(t, spec.start),
		BillingTime:    spec.billing,
		Timezone:       spec.zone,
	}
	if spec.ending != "" {
		v := instant(t, spec.ending)
		sub.EndingAt = &v
	}
	if spec.terminated != "" {
		v := instant(t, spec.terminated)
		sub.TerminatedAt = &v
	}
	s, err := rating.NewSchedule(sub, spec.interval, mustLocation(t, spec.zone))
	if err != nil {
		t.Fatalf("NewSchedule: %v", err)
	}
	return s
}

// formatPeriod writes a period the way the tables do: both ends in the
// subscription's zone, offsets included, so a wrong side of a DST change
// shows.
func formatPeriod(p rating.Period) string {
	return p.From.Format(time.RFC3339Nano) + " / " + p.To.Format(time.RFC3339Nano)
}

// periodAt is one question to a schedule: which period holds at.
type periodAt struct {
	at   string
	want string // "from / to"
	why  string
}

var periodTests = []struct {
	name  string
	sub   subscriptionSpec
	cases []periodAt
}{
	{
		name: "calendar monthly, New York",
		sub:  subscriptionSpec{zone: "America/New_York", billing: schemas.BillingCalendar, interval: schemas.IntervalMonthly, start: "2026-01-15T10:00:00-05:00"},
		cases: []periodAt{
			{"2026-03-01T03:00:00Z", "2026-02-01T00:00:00-05:00 / 2026-03-01T00:00:00-05:00", "03:00Z on March 1st is 22:00 on February 28th in New York"},
			{"2026-01-20T00:00:00Z", "2026-01-15T10:00:00-05:00 / 2026-02-01T00:00:00-05:00", "the first period starts at subscription_at"},
			{"2026-01-15T10:00:00-05:00", "2026-01-15T10:00:00-05:00 / 2026-02-01T00:00:00-05:00", "subscription_at itself"},
			{"2025-12-01T00:00:00Z", "2026-01-15T10:00:00-05:00 / 2026-02-01T00:00:00-05:00", "before the subscription: the first period"},
			{"2026-03-20T12:00:00Z", "2026-03-01T00:00:00-05:00 / 2026-04-01T00:00:00-04:00", "DST starts on March 8th: 743 hours"},
			{"2026-04-01T03:59:59.999999999Z", "2026-03-01T00:00:00-05:00 / 2026-04-01T00:00:00-04:00", "March's last nanosecond"},
			{"2026-04-01T04:00:00Z", "2026-04-01T00:00:00-04:00 / 2026-05-01T00:00:00-04:00", "April's first instant"},
			{"2026-11-15T00:00:00Z", "2026-11-01T00:00:00-04:00 / 2026-12-01T00:00:00-05:00", "DST ends on November 1st at 02:00, after midnight: 721 hours"},
			{"2027-01-01T04:59:59Z", "2026-12-01T00:00:00-05:00 / 2027-01-01T00:00:00-05:00", "still 2026 in New York"},
		},
	},
	{
		name: "calendar monthly, Berlin, starting on a boundary",
		sub:  subscriptionSpec{zone: "Europe/Berlin", billing: schemas.BillingCalendar, interval: schemas.IntervalMonthly, start: "2026-01-01T00:00:00+01:00"},
		cases: []periodAt{
			{"2026-01-01T00:00:00+01:00", "2026-01-01T00:00:00+01:00 / 2026-02-01T00:00:00+01:00", "a first period that is whole"},
			{"2026-03-31T23:30:00+02:00", "2026-03-01T00:00:00+01:00 / 2026-04-01T00:00:00+02:00", "DST starts on March 29th"},
			{"2026-03-31T22:00:00Z", "2026-04-01T00:00:00+02:00 / 2026-05-01T00:00:00+02:00", "22:00Z is midnight in Berlin in summer"},
			{"2026-10-25T12:00:00Z", "2026-10-01T00:00:00+02:00 / 2026-11-01T00:00:00+01:00", "DST ends on October 25th"},
		},
	},
	{
		name: "calendar monthly, Asunción, where October 1st 2023 had no midnight",
		sub:  subscriptionSpec{zone: "America/Asuncion", billing: schemas.BillingCalendar, interval: schemas.IntervalMonthly, start: "2023-08-01T00:00:00-04:00"},
		cases: []periodAt{
			// time.Date puts this 00:00 at 23:00 on September 30th; the
			// clocks went from 23:59:59 to 01:00.
			{"2023-09-30T23:30:00-04:00", "2023-09-01T00:00:00-04:00 / 2023-10-01T01:00:00-03:00", "still September"},
			{"2023-10-01T01:00:00-03:00", "2023-10-01T01:00:00-03:00 / 2023-11-01T00:00:00-03:00", "October starts when the clock shows October"},
		},
	},
	{
		name: "calendar weekly, New York",
		sub:  subscriptionSpec{zone: "America/New_York", billing: schemas.BillingCalendar, interval: schemas.IntervalWeekly, start: "2026-02-25T15:00:00-05:00"}, // a Wednesday
		cases: []periodAt{
			{"2026-02-27T00:00:00Z", "2026-02-25T15:00:00-05:00 / 2026-03-02T00:00:00-05:00", "first partial week, to Monday"},
			{"2026-03-08T12:00:00Z", "2026-03-02T00:00:00-05:00 / 2026-03-09T00:00:00-04:00", "the week DST starts: 167 hours"},
			{"2026-03-09T04:00:00Z", "2026-03-09T00:00:00-04:00 / 2026-03-16T00:00:00-04:00", "Monday 00:00 local"},
			{"2026-03-16T03:59:00Z", "2026-03-09T00:00:00-04:00 / 2026-03-16T00:00:00-04:00", "Monday in UTC, still Sunday in New York"},
		},
	},
	{
		name: "calendar weekly, across a year end",
		sub:  subscriptionSpec{zone: "UTC", billing: schemas.BillingCalendar, interval: schemas.IntervalWeekly, start: "2026-12-01T00:00:00Z"}, // a Tuesday
		cases: []periodAt{
			{"2026-12-03T00:00:00Z", "2026-12-01T00:00:00Z / 2026-12-07T00:00:00Z", "first partial week"},
			{"2027-01-01T12:00:00Z", "2026-12-28T00:00:00Z / 2027-01-04T00:00:00Z", "weeks start on Monday, whatever the year"},
		},
	},
	{
		name: "calendar quarterly, New York",
		sub:  subscriptionSpec{zone: "America/New_York", billing: schemas.BillingCalendar, interval: schemas.IntervalQuarterly, start: "2026-02-10T09:00:00-05:00"},
		cases: []periodAt{
			{"2026-02-20T00:00:00Z", "2026-02-10T09:00:00-05:00 / 2026-04-01T00:00:00-04:00", "first partial quarter"},
			{"2026-05-05T00:00:00Z", "2026-04-01T00:00:00-04:00 / 2026-07-01T00:00:00-04:00", "second quarter"},
			{"2026-12-31T12:00:00Z", "2026-10-01T00:00:00-04:00 / 2027-01-01T00:00:00-05:00", "fourth quarter, across the end of DST"},
		},
	},
	{
		name: "calendar yearly, Tokyo",
		sub:  subscriptionSpec{zone: "Asia/Tokyo", billing: schemas.BillingCalendar, interval: schemas.IntervalYearly, start: "2026-06-15T00:00:00+09:00"},
		cases: []periodAt{
			{"2026-07-01T00:00:00Z", "2026-06-15T00:00:00+09:00 / 2027-01-01T00:00:00+09:00", "first partial year"},
			{"2026-12-31T16:00:00Z", "2027-01-01T00:00:00+09:00 / 2028-01-01T00:00:00+09:00", "already 2027 in Tokyo"},
		},
	},
	{
		name: "calendar monthly, terminated mid-period",
		sub: subscriptionSpec{zone: "America/New_York", billing: schemas.BillingCalendar, interval: schemas.IntervalMonthly, start: "2026-01-15T10:00:00-05:00",
			ending: "2026-12-31T00:00:00-05:00", terminated: "2026-03-17T15:30:00-04:00"},
		cases: []periodAt{
			{"2026-02-10T00:00:00Z", "2026-02-01T00:00:00-05:00 / 2026-03-01T00:00:00-05:00", "a whole period before the end"},
			{"2026-03-10T00:00:00Z", "2026-03-01T00:00:00-05:00 / 2026-03-17T15:30:00-04:00", "the last period ends at termination, the earlier end"},
			{"2026-03-17T15:30:00-04:00", "2026-03-01T00:00:00-05:00 / 2026-03-17T15:30:00-04:00", "at the end: the last period"},
			{"2026-06-01T00:00:00Z", "2026-03-01T00:00:00-05:00 / 2026-03-17T15:30:00-04:00", "after the end: the last period"},
		},
	},
	{
		name: "calendar monthly, ending on a boundary",
		sub: subscriptionSpec{zone: "America/New_York", billing: schemas.BillingCalendar, interval: schemas.IntervalMonthly, start: "2026-01-15T10:00:00-05:00",
			ending: "2026-04-01T00:00:00-04:00"},
		cases: []periodAt{
			{"2026-05-01T00:00:00Z", "2026-03-01T00:00:00-05:00 / 2026-04-01T00:00:00-04:00", "the last period is March, whole"},
		},
	},
	{
		name: "calendar monthly, terminated in the first period",
		sub: subscriptionSpec{zone: "America/New_York", billing: schemas.BillingCalendar, interval: schemas.IntervalMonthly, start: "2026-01-15T10:00:00-05:00",
			terminated: "2026-01-20T00:00:00-05:00"},
		cases: []periodAt{
			{"2026-03-01T00:00:00Z", "2026-01-15T10:00:00-05:00 / 2026-01-20T00:00:00-05:00", "one period, partial at both ends"},
		},
	},
	{
		name: "terminated before it started",
		sub: subscriptionSpec{zone: "America/New_York", billing: schemas.BillingCalendar, interval: schemas.IntervalMonthly, start: "2026-01-15T10:00:00-05:00",
			terminated: "2026-01-10T00:00:00-05:00"},
		cases: []periodAt{
			{"2026-01-20T00:00:00Z", "2026-01-15T10:00:00-05:00 / 2026-01-15T10:00:00-05:00", "an empty period at subscription_at"},
		},
	},
	{
		name: "anniversary monthly, New York, across DST",
		sub: subscriptionSpec{zone: "America/New_York", billing: schemas.BillingAnniversary, interval: schemas.IntervalMonthly, start: "2026-02-10T09:00:00-05:00",
			terminated: "2026-12-20T12:00:00-05:00"},
		cases: []periodAt{
			{"2026-02-10T14:00:00Z", "2026-02-10T09:00:00-05:00 / 2026-03-10T09:00:00-04:00", "09:00 local both ends: 28 days less an hour"},
			{"2026-03-10T12:59:59Z", "2026-02-10T09:00:00-05:00 / 2026-03-10T09:00:00-04:00", "08:59:59 EDT"},
			{"2026-03-10T13:00:00Z", "2026-03-10T09:00:00-04:00 / 2026-04-10T09:00:00-04:00", "09:00 EDT"},
			{"2026-11-01T00:00:00Z", "2026-10-10T09:00:00-04:00 / 2026-11-10T09:00:00-05:00", "across the end of DST"},
			{"2026-12-15T00:00:00Z", "2026-12-10T09:00:00-05:00 / 2026-12-20T12:00:00-05:00", "terminated mid-period"},
		},
	},
	{
		name: "anniversary monthly on the 31st",
		sub:  subscriptionSpec{zone: "UTC", billing: schemas.BillingAnniversary, interval: schemas.IntervalMonthly, start: "2026-01-31T09:15:00Z"},
		cases: []periodAt{
			{"2026-02-28T09:14:59Z", "2026-01-31T09:15:00Z / 2026-02-28T09:15:00Z", "clamped to February 28th"},
			{"2026-03-15T00:00:00Z", "2026-02-28T09:15:00Z / 2026-03-31T09:15:00Z", "back to the 31st in March"},
			{"2026-04-30T09:15:00Z", "2026-04-30T09:15:00Z / 2026-05-31T09:15:00Z", "April 30th, then May 31st"},
		},
	},
	{
		name: "anniversary monthly on the 31st, leap year",
		sub:  subscriptionSpec{zone: "UTC", billing: schemas.BillingAnniversary, interval: schemas.IntervalMonthly, start: "2028-01-31T00:00:00Z"},
		cases: []periodAt{
			{"2028-03-01T00:00:00Z", "2028-02-29T00:00:00Z / 2028-03-31T00:00:00Z", "February 29th in a leap year"},
		},
	},
	{
		name: "anniversary yearly on a leap day",
		sub:  subscriptionSpec{zone: "UTC", billing: schemas.BillingAnniversary, interval: schemas.IntervalYearly, start: "2024-02-29T12:00:00Z"},
		cases: []periodAt{
			{"2024-03-01T00:00:00Z", "2024-02-29T12:00:00Z / 2025-02-28T12:00:00Z", "first year"},
			{"2025-03-01T00:00:00Z", "2025-02-28T12:00:00Z / 2026-02-28T12:00:00Z", "February 28th in common years"},
			{"2028-02-29T11:59:59Z", "2027-02-28T12:00:00Z / 2028-02-29T12:00:00Z", "the leap day comes back"},
			{"2028-03-01T00:00:00Z", "2028-02-29T12:00:00Z / 2029-02-28T12:00:00Z", "from the leap day"},
		},
	},
	{
		name: "anniversary quarterly on the 30th",
		sub:  subscriptionSpec{zone: "UTC", billing: schemas.BillingAnniversary, interval: schemas.IntervalQuarterly, start: "2025-11-30T12:00:00Z"},
		cases: []periodAt{
			{"2026-01-01T00:00:00Z", "2025-11-30T12:00:00Z / 2026-02-28T12:00:00Z", "clamped to February 28th"},
			{"2026-03-01T00:00:00Z", "2026-02-28T12:00:00Z / 2026-05-30T12:00:00Z", "back to the 30th"},
			{"2026-06-01T00:00:00Z", "2026-05-30T12:00:00Z / 2026-08-30T12:00:00Z", "every three months"},
		},
	},
	{
		name: "anniversary quarterly on the 31st",
		sub:  subscriptionSpec{zone: "UTC", billing: schemas.BillingAnniversary, interval: schemas.IntervalQuarterly, start: "2026-01-31T00:00:00Z"},
		cases: []periodAt{
			{"2026-05-01T00:00:00Z", "2026-04-30T00:00:00Z / 2026-07-31T00:00:00Z", "April 30th, then July 31st"},
		},
	},
	{
		name: "anniversary weekly, New York",
		sub:  subscriptionSpec{zone: "America/New_York", billing: schemas.BillingAnniversary, interval: schemas.IntervalWeekly, start: "2026-03-04T12:00:00-05:00"}, // a Wednesday
		cases: []periodAt{
			{"2026-03-11T15:59:59Z", "2026-03-04T12:00:00-05:00 / 2026-03-11T12:00:00-04:00", "Wednesday noon to Wednesday noon, across DST"},
			{"2026-03-11T16:00:00Z", "2026-03-11T12:00:00-04:00 / 2026-03-18T12:00:00-04:00", "noon EDT"},
		},
	},
	{
		name: "anniversary weekly at 02:30, New York: the DST gap",
		sub:  subscriptionSpec{zone: "America/New_York", billing: schemas.BillingAnniversary, interval: schemas.IntervalWeekly, start: "2026-03-01T02:30:00-05:00"}, // a Sunday
		cases: []periodAt{
			{"2026-03-05T00:00:00Z", "2026-03-01T02:30:00-05:00 / 2026-03-08T03:30:00-04:00", "02:30 does not exist on March 8th: 03:30 EDT, an hour forward"},
			{"2026-03-08T07:29:59Z", "2026-03-01T02:30:00-05:00 / 2026-03-08T03:30:00-04:00", "03:29:59 EDT"},
			{"2026-03-08T07:30:00Z", "2026-03-08T03:30:00-04:00 / 2026-03-15T02:30:00-04:00", "back to 02:30 the week after"},
		},
	},
	{
		name: "anniversary weekly at 01:30, New York: the repeated hour",
		sub:  subscriptionSpec{zone: "America/New_York", billing: schemas.BillingAnniversary, interval: schemas.IntervalWeekly, start: "2026-10-25T01:30:00-04:00"}, // a Sunday
		cases: []periodAt{
			{"2026-11-01T05:29:59Z", "2026-10-25T01:30:00-04:00 / 2026-11-01T01:30:00-04:00", "the period ends at the first 01:30"},
			{"2026-11-01T05:30:00Z", "2026-11-01T01:30:00-04:00 / 2026-11-08T01:30:00-05:00", "the first 01:30, EDT"},
			{"2026-11-01T06:30:00Z", "2026-11-01T01:30:00-04:00 / 2026-11-08T01:30:00-05:00", "the second 01:30, EST, is inside"},
		},
	},
	{
		name: "anniversary monthly at 02:30, Berlin: the DST gap",
		sub:  subscriptionSpec{zone: "Europe/Berlin", billing: schemas.BillingAnniversary, interval: schemas.IntervalMonthly, start: "2026-01-29T02:30:00+01:00"},
		cases: []periodAt{
			{"2026-03-01T00:00:00Z", "2026-02-28T02:30:00+01:00 / 2026-03-29T03:30:00+02:00", "clamped to the 28th, then 02:30 on March 29th does not exist"},
			{"2026-04-01T00:00:00Z", "2026-03-29T03:30:00+02:00 / 2026-04-29T02:30:00+02:00", "02:30 again in April"},
		},
	},
	{
		name: "anniversary monthly at 02:30, Berlin: the repeated hour",
		sub:  subscriptionSpec{zone: "Europe/Berlin", billing: schemas.BillingAnniversary, interval: schemas.IntervalMonthly, start: "2026-01-25T02:30:00+01:00"},
		cases: []periodAt{
			{"2026-03-26T00:00:00Z", "2026-03-25T02:30:00+01:00 / 2026-04-25T02:30:00+02:00", "across the start of DST"},
			{"2026-10-01T00:00:00Z", "2026-09-25T02:30:00+02:00 / 2026-10-25T02:30:00+02:00", "ends at the first 02:30 of October 25th"},
			{"2026-10-25T01:00:00Z", "2026-10-25T02:30:00+02:00 / 2026-11-25T02:30:00+01:00", "between the two 02:30s"},
		},
	},
	{
		name: "anniversary weekly at midnight, Santiago: a skipped midnight",
		sub:  subscriptionSpec{zone: "America/Santiago", billing: schemas.BillingAnniversary, interval: schemas.IntervalWeekly, start: "2026-08-30T00:00:00-04:00"}, // a Sunday
		cases: []periodAt{
			// time.Date puts this 00:00 at 23:00 on Saturday.
			{"2026-09-06T03:30:00Z", "2026-08-30T00:00:00-04:00 / 2026-09-06T01:00:00-03:00", "Saturday 23:30 is still the first week"},
			{"2026-09-06T04:00:00Z", "2026-09-06T01:00:00-03:00 / 2026-09-13T00:00:00-03:00", "the week starts when the clock shows Sunday"},
		},
	},
	{
		name: "anniversary monthly, Lord Howe: a 30-minute DST",
		sub:  subscriptionSpec{zone: "Australia/Lord_Howe", billing: schemas.BillingAnniversary, interval: schemas.IntervalMonthly, start: "2026-03-05T01:45:00+11:00"},
		cases: []periodAt{
			{"2026-04-01T00:00:00Z", "2026-03-05T01:45:00+11:00 / 2026-04-05T01:45:00+11:00", "01:45 happens twice on April 5th: the first"},
			{"2026-09-10T00:00:00Z", "2026-09-05T01:45:00+10:30 / 2026-10-05T01:45:00+11:00", "DST starts on October 4th"},
		},
	},
}

func TestPeriodAt(t *testing.T) {
	for _, tt := range periodTests {
		t.Run(tt.name, func(t *testing.T) {
			schedule := tt.sub.schedule(t)
			for _, c := range tt.cases {
				got := formatPeriod(schedule.At(instant(t, c.at)))
				if got != c.want {
					t.Errorf("at %s (%s):\n got  %s\n want %s", c.at, c.why, got, c.want)
				}
			}
		})
	}
}

// The package functions are the Schedule's, for a subscription whose
// time zone the caller has loaded.
func TestPeriodAtFunction(t *testing.T) {
	ny := mustLocation(t, "America/New_York")
	sub := schemas.Subscription{SubscriptionAt: instant(t, "2026-01-15T10:00:00-05:00"), BillingTime: schemas.BillingCalendar}
	got := rating.PeriodAt(sub, schemas.IntervalMonthly, ny, instant(t, "2026-03-01T03:00:00Z"))
	want := rating.Period{From: instant(t, "2026-02-01T05:00:00Z"), To: instant(t, "2026-03-01T05:00:00Z")}
	if !got.From.Equal(want.From) || !got.To.Equal(want.To) {
		t.Errorf("PeriodAt = %s, want %s", formatPeriod(got), formatPeriod(want))
	}
	if got.To.Sub(got.From) != 28*24*time.Hour {
		t.Errorf("February is %s long", got.To.Sub(got.From))
	}
	prev, ok := rating.Previous(sub, schemas.IntervalMonthly, ny, instant(t, "2026-03-01T03:00:00Z"))
	if want := "2026-01-15T10:00:00-05:00 / 2026-02-01T00:00:00-05:00"; !ok || formatPeriod(prev) != want {
		t.Errorf("Previous = %s, %v; want %s", formatPeriod(prev), ok, want)
	}
	periods := rating.Periods(sub, schemas.IntervalMonthly, ny, instant(t, "2026-01-01T00:00:00Z"), instant(t, "2026-03-01T03:00:00Z"))
	if len(periods) != 2 {
		t.Errorf("Periods = %d periods, want 2 (January's partial one and February)", len(periods))
	}
}

// A month starting in EST and ending in EDT is not a multiple of 24 hours.
func TestPeriodLengthsAcrossDST(t *testing.T) {
	tests := []struct {
		zone, at string
		want     time.Duration
	}{
		{"America/New_York", "2026-03-15T12:00:00Z", 31*24*time.Hour - time.Hour},
		{"America/New_York", "2026-11-15T12:00:00Z", 30*24*time.Hour + time.Hour},
		{"Europe/Berlin", "2026-03-15T12:00:00Z", 31*24*time.Hour - time.Hour},
		{"Europe/Berlin", "2026-10-15T12:00:00Z", 31*24*time.Hour + time.Hour},
		{"Australia/Lord_Howe", "2026-04-15T12:00:00Z", 30*24*time.Hour + 30*time.Minute},
		{"UTC", "2026-03-15T12:00:00Z", 31 * 24 * time.Hour},
	}
	for _, tt := range tests {
		s := subscriptionSpec{zone: tt.zone, billing: schemas.BillingCalendar, interval: schemas.IntervalMonthly, start: "2020-01-01T00:00:00Z"}.schedule(t)
		p := s.At(instant(t, tt.at))
		if got := p.To.Sub(p.From); got != tt.want {
			t.Errorf("%s: %s is %s long, want %s", tt.zone, formatPeriod(p), got, tt.want)
		}
	}
}

func TestPeriods(t *testing.T) {
	janThe31st := subscriptionSpec{zone: "UTC", billing: schemas.BillingAnniversary, interval: schemas.IntervalMonthly, start: "2026-01-31T09:15:00Z"}
	terminated := subscriptionSpec{zone: "America/New_York", billing: schemas.BillingCalendar, interval: schemas.IntervalMonthly,
		start: "2026-01-15T10:00:00-05:00", terminated: "2026-03-17T15:30:00-04:00"}
	tests := []struct {
		name     string
		sub      subscriptionSpec
		from, to string
		want     []string // period starts, then the last period's end
	}{
		{
			name: "monthly anniversary on the 31st through a year: clamped, never drifting",
			sub:  janThe31st, from: "2026-01-01T00:00:00Z", to: "2027-01-31T09:15:00Z",
			want: []string{"2026-01-31T09:15:00Z", "2026-02-28T09:15:00Z", "2026-03-31T09:15:00Z", "2026-04-30T09:15:00Z",
				"2026-05-31T09:15:00Z", "2026-06-30T09:15:00Z", "2026-07-31T09:15:00Z", "2026-08-31T09:15:00Z",
				"2026-09-30T09:15:00Z", "2026-10-31T09:15:00Z", "2026-11-30T09:15:00Z", "2026-12-31T09:15:00Z",
				"2027-01-31T09:15:00Z"},
		},
		{
			name: "a period ending exactly at from is left out, one starting exactly at to too",
			sub:  janThe31st, from: "2026-02-28T09:15:00Z", to: "2026-04-30T09:15:00Z",
			want: []string{"2026-02-28T09:15:00Z", "2026-03-31T09:15:00Z", "2026-04-30T09:15:00Z"},
		},
		{
			name: "one nanosecond of overlap is enough",
			sub:  janThe31st, from: "2026-02-28T09:14:59.999999999Z", to: "2026-02-28T09:15:00.000000001Z",
			want: []string{"2026-01-31T09:15:00Z", "2026-02-28T09:15:00Z", "2026-03-31T09:15:00Z"},
		},
		{
			name: "the last period ends at termination; nothing after it",
			sub:  terminated, from: "2026-01-01T00:00:00Z", to: "2027-01-01T00:00:00Z",
			want: []string{"2026-01-15T10:00:00-05:00", "2026-02-01T00:00:00-05:00", "2026-03-01T00:00:00-05:00", "2026-03-17T15:30:00-04:00"},
		},
		{
			name: "before the subscription: none",
			sub:  terminated, from: "2025-01-01T00:00:00Z", to: "2026-01-15T10:00:00-05:00",
		},
		{
			name: "after the end: none",
			sub:  terminated, from: "2026-03-17T15:30:00-04:00", to: "2027-01-01T00:00:00Z",
		},
		{
			name: "an empty range: none",
			sub:  janThe31st, from: "2026-05-01T00:00:00Z", to: "2026-05-01T00:00:00Z",
		},
		{
			name: "a reversed range: none",
			sub:  janThe31st, from: "2026-06-01T00:00:00Z", to: "2026-05-01T00:00:00Z",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			periods := tt.sub.schedule(t).Periods(instant(t, tt.from), instant(t, tt.to))
			var got []string
			for i, p := range periods {
				got = append(got, p.From.Format(time.RFC3339Nano))
				if i == len(periods)-1 {
					got = append(got, p.To.Format(time.RFC3339Nano))
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("Periods:\n got  %v\n want %v", got, tt.want)
			}
		})
	}
}

func TestPeriodsBound(t *testing.T) {
	s := subscriptionSpec{zone: "UTC", billing: schemas.BillingCalendar, interval: schemas.IntervalWeekly, start: "2000-01-03T00:00:00Z"}.schedule(t)
	periods := s.Periods(instant(t, "2000-01-01T00:00:00Z"), instant(t, "2100-01-01T00:00:00Z"))
	if len(periods) != rating.MaxPeriods {
		t.Fatalf("Periods over a century of weeks = %d periods, want MaxPeriods (%d)", len(periods), rating.MaxPeriods)
	}
	// The caller continues from the last period's To.
	last := periods[len(periods)-1]
	next := s.Periods(last.To, instant(t, "2100-01-01T00:00:00Z"))
	if !next[0].From.Equal(last.To) {
		t.Errorf("continuing from %s starts at %s", last.To, next[0].From)
	}
}

func TestPrevious(t *testing.T) {
	spec := subscriptionSpec{zone: "America/New_York", billing: schemas.BillingCalendar, interval: schemas.IntervalMonthly,
		start: "2026-01-15T10:00:00-05:00", terminated: "2026-03-17T15:30:00-04:00"}
	tests := []struct {
		at   string
		want string // "" when there is none
	}{
		{"2025-06-01T00:00:00Z", ""}, // before the start: the first period
		{"2026-01-20T00:00:00Z", ""}, // the first period
		{"2026-02-01T05:00:00Z", "2026-01-15T10:00:00-05:00 / 2026-02-01T00:00:00-05:00"},
		{"2026-03-10T00:00:00Z", "2026-02-01T00:00:00-05:00 / 2026-03-01T00:00:00-05:00"},
		{"2026-09-01T00:00:00Z", "2026-02-01T00:00:00-05:00 / 2026-03-01T00:00:00-05:00"}, // after the end: before the last
	}
	s := spec.schedule(t)
	for _, tt := range tests {
		p, ok := s.Previous(instant(t, tt.at))
		got := ""
		if ok {
			got = formatPeriod(p)
		}
		if got != tt.want {
			t.Errorf("Previous(%s) = %q, want %q", tt.at, got, tt.want)
		}
	}
}

// Every interval and billing time has a rule; unknown ones are errors,
// never a default.
func TestNewScheduleCoversEveryIntervalAndBillingTime(t *testing.T) {
	start := instant(t, "2026-01-31T10:00:00Z")
	for _, interval := range schemas.Intervals {
		for _, billing := range schemas.BillingTimes {
			s, err := rating.NewSchedule(schemas.Subscription{SubscriptionAt: start, BillingTime: billing}, interval, time.UTC)
			if err != nil {
				t.Errorf("%s %s: %v", billing, interval, err)
				continue
			}
			if p := s.At(start); !p.From.Equal(start) || !p.To.After(start) {
				t.Errorf("%s %s: first period %s", billing, interval, formatPeriod(p))
			}
		}
	}
	invalid := []struct {
		name     string
		billing  schemas.BillingTime
		interval schemas.Interval
		loc      *time.Location
	}{
		{"unknown interval", schemas.BillingCalendar, "daily", time.UTC},
		{"empty interval", schemas.BillingCalendar, "", time.UTC},
		{"unknown billing time", "fiscal", schemas.IntervalMonthly, time.UTC},
		{"empty billing time is not calendar", "", schemas.IntervalMonthly, time.UTC},
		{"nil location", schemas.BillingCalendar, schemas.IntervalMonthly, nil},
	}
	for _, tt := range invalid {
		_, err := rating.NewSchedule(schemas.Subscription{SubscriptionAt: start, BillingTime: tt.billing}, tt.interval, tt.loc)
		if !errors.Is(err, rating.ErrInvalidSchedule) {
			t.Errorf("%s: err %v, want ErrInvalidSchedule", tt.name, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("PeriodAt with an unknown interval did not panic")
		}
	}()
	rating.PeriodAt(schemas.Subscription{BillingTime: schemas.BillingCalendar}, "daily", time.UTC, start)
}

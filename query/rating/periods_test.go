package rating_test

import (
	"errors"
	"fmt"
	"os"
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

// TestPeriodScript runs testdata/periods.txt: subscriptions and, for
// each, instants and the period that holds them.
func TestPeriodScript(t *testing.T) {
	const path = "testdata/periods.txt"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var schedule *rating.Schedule
	checks := 0
	for n, line := range strings.Split(string(data), "\n") {
		where := fmt.Sprintf("%s:%d", path, n+1)
		line, why, _ := strings.Cut(line, "#")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
		case fields[0] == "subscription" && len(fields) >= 5:
			spec := subscriptionSpec{zone: fields[1], billing: schemas.BillingTime(fields[2]), interval: schemas.Interval(fields[3]), start: fields[4]}
			for _, option := range fields[5:] {
				key, value, _ := strings.Cut(option, "=")
				switch key {
				case "ending":
					spec.ending = value
				case "terminated":
					spec.terminated = value
				default:
					t.Fatalf("%s: unknown option %q", where, option)
				}
			}
			s := spec.schedule(t)
			schedule = &s
		case fields[0] == "at" && len(fields) == 6 && fields[2] == "=>" && fields[4] == "/":
			if schedule == nil {
				t.Fatalf("%s: at before any subscription", where)
			}
			want := fields[3] + " / " + fields[5]
			if got := formatPeriod(schedule.At(instant(t, fields[1]))); got != want {
				t.Errorf("%s: at %s (%s):\n got  %s\n want %s", where, fields[1], strings.TrimSpace(why), got, want)
			}
			checks++
		default:
			t.Fatalf("%s: cannot read %q", where, line)
		}
	}
	if checks == 0 {
		t.Fatalf("%s: no checks", path)
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
	if !got.Contains(instant(t, "2026-03-01T03:00:00Z")) || !got.Contains(got.From) || got.Contains(got.To) {
		t.Errorf("%s: Contains is not [From, To)", formatPeriod(got))
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

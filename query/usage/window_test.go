package usage

import (
	"testing"
	"time"
)

func TestWindowStartEnd(t *testing.T) {
	newYork := mustZone(t, "America/New_York")
	kolkata := mustZone(t, "Asia/Kolkata")
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name      string
		size      WindowSize
		loc       *time.Location
		at        string
		wantStart string
		wantEnd   string
		wantHours float64
	}{
		{"minute", WindowMinute, time.UTC, "2024-03-10T07:08:09.5Z", "2024-03-10T07:08:00Z", "2024-03-10T07:09:00Z", 1.0 / 60},
		{"hour in +05:30 starts at :30 UTC", WindowHour, kolkata, "2024-03-10T05:45:00Z", "2024-03-10T11:00:00+05:30", "2024-03-10T12:00:00+05:30", 1},
		{"first 01:xx of the repeated hour (EDT)", WindowHour, newYork, "2024-11-03T05:30:00Z", "2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00", 1},
		{"second 01:xx of the repeated hour (EST)", WindowHour, newYork, "2024-11-03T06:30:00Z", "2024-11-03T01:00:00-05:00", "2024-11-03T02:00:00-05:00", 1},
		{"spring-forward day has 23 hours", WindowDay, newYork, "2024-03-10T16:00:00Z", "2024-03-10T00:00:00-05:00", "2024-03-11T00:00:00-04:00", 23},
		{"fall-back day has 25 hours", WindowDay, newYork, "2024-11-03T16:00:00Z", "2024-11-03T00:00:00-04:00", "2024-11-04T00:00:00-05:00", 25},
		{"late evening belongs to the local day", WindowDay, newYork, "2024-03-02T03:00:00Z", "2024-03-01T00:00:00-05:00", "2024-03-02T00:00:00-05:00", 24},
		{"local February, though UTC March", WindowMonth, newYork, "2024-03-01T03:00:00Z", "2024-02-01T00:00:00-05:00", "2024-03-01T00:00:00-05:00", 29 * 24},
		{"month across spring-forward", WindowMonth, newYork, "2024-03-20T12:00:00Z", "2024-03-01T00:00:00-05:00", "2024-04-01T00:00:00-04:00", 31*24 - 1},
		{"December to January", WindowMonth, time.UTC, "2024-12-31T23:59:59Z", "2024-12-01T00:00:00Z", "2025-01-01T00:00:00Z", 31 * 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := tt.size.Start(utc(tt.at), tt.loc)
			end := tt.size.End(start)
			if got := formatIn(start, tt.loc); got != tt.wantStart {
				t.Errorf("start %s, want %s", got, tt.wantStart)
			}
			if got := formatIn(end, tt.loc); got != tt.wantEnd {
				t.Errorf("end %s, want %s", got, tt.wantEnd)
			}
			if got := end.Sub(start).Hours(); got != tt.wantHours {
				t.Errorf("window lasts %v hours, want %v", got, tt.wantHours)
			}
		})
	}
}

// TestWindowFromDB: ClickHouse returns DAY and MONTH windows as a Date
// (midnight UTC of the calendar day); the window starts at local midnight.
func TestWindowFromDB(t *testing.T) {
	newYork := mustZone(t, "America/New_York")
	date := time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC)
	if got := formatIn(WindowDay.fromDB(date, newYork), newYork); got != "2024-03-10T00:00:00-05:00" {
		t.Errorf("DAY from Date: %s", got)
	}
	instant := time.Date(2024, 3, 10, 5, 30, 0, 0, time.UTC)
	if got := formatIn(WindowHour.fromDB(instant, mustZone(t, "Asia/Kolkata")), mustZone(t, "Asia/Kolkata")); got != "2024-03-10T11:00:00+05:30" {
		t.Errorf("HOUR from DateTime: %s", got)
	}
}

func TestCountWindows(t *testing.T) {
	newYork := mustZone(t, "America/New_York")
	tests := []struct {
		size     WindowSize
		from, to time.Time
		want     int
	}{
		{WindowMinute, time.Date(2024, 1, 1, 0, 0, 30, 0, time.UTC), time.Date(2024, 1, 1, 0, 1, 30, 0, time.UTC), 2},
		{WindowMinute, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 1, 1, 0, 1, 0, 0, time.UTC), 1},
		{WindowDay, time.Date(2024, 3, 1, 0, 0, 0, 0, newYork), time.Date(2024, 4, 1, 0, 0, 0, 0, newYork), 31},
		{WindowMonth, time.Date(2024, 1, 15, 0, 0, 0, 0, newYork), time.Date(2024, 3, 1, 0, 0, 0, 1, newYork), 3},
		{WindowNone, time.Date(2000, 1, 1, 0, 0, 0, 0, newYork), time.Date(2100, 1, 1, 0, 0, 0, 0, newYork), 1},
		// Counting stops just past the limit, however long the range.
		{WindowMinute, time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2105, 1, 1, 0, 0, 0, 0, time.UTC), 101},
	}
	for _, tt := range tests {
		if got := tt.size.CountWindows(tt.from, tt.to, newYork, 100); got != tt.want {
			t.Errorf("%s windows in [%s, %s): %d, want %d", tt.size, tt.from, tt.to, got, tt.want)
		}
	}
}

func formatIn(t time.Time, loc *time.Location) string { return t.In(loc).Format(time.RFC3339Nano) }

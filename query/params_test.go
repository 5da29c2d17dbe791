package query

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/query/usage"
	"github.com/tally-oss/tally/schemas"
)

func testMeter(t testing.TB) schemas.Meter {
	t.Helper()
	m, err := schemas.ParseMeter([]byte(`{"key": "tokens", "event_type": "llm", "aggregation": "SUM",
		"value_property": "$.tokens", "group_by": {"model": "$.model", "region": "$.region"}}`))
	if err != nil {
		t.Fatal(err)
	}
	m.Revision = 42
	return m
}

var paramsNow = time.Date(2024, 3, 15, 12, 34, 56, 789_000_000, time.UTC)

func TestParseUsageParams(t *testing.T) {
	newYork := mustZone(t, "America/New_York")
	meter := testMeter(t)
	base := usage.Query{OrgID: "acme", MeterKey: "tokens", Revision: 42, Aggregation: schemas.AggSum,
		From: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), To: paramsNow, Location: time.UTC}
	tests := []struct {
		name  string
		query string
		want  func(q *usage.Query)
	}{
		{"defaults: this month so far, UTC, one window", "", func(*usage.Query) {}},
		{"from defaults to the start of the month in the zone", "window_time_zone=America/New_York", func(q *usage.Query) {
			q.Location, q.From = newYork, time.Date(2024, 3, 1, 0, 0, 0, 0, newYork)
		}},
		{"fractional seconds and offsets are kept exactly",
			"from=2024-03-10T01:02:03.123456789%2B05:30&to=2024-03-11T00:00:00.5Z", func(q *usage.Query) {
				q.From = time.Date(2024, 3, 9, 19, 32, 3, 123456789, time.UTC)
				q.To = time.Date(2024, 3, 11, 0, 0, 0, 500_000_000, time.UTC)
			}},
		{"window size in any case", "window_size=day", func(q *usage.Query) { q.WindowSize = usage.WindowDay }},
		{"group_by repeated or comma-separated, in request order, once each",
			"group_by=model&group_by=customer_id,model", func(q *usage.Query) {
				q.GroupBy = []string{"model", "customer_id"}
			}},
		{"filters sorted by key, values OR-ed, an empty value is the empty group",
			"filter[model]=b&filter[model]=a&filter[model]=b&filter[customer_id]=c&filter[region]=", func(q *usage.Query) {
				q.Filters = []usage.GroupFilter{{Key: "customer_id", Values: []string{"c"}}, {Key: "model", Values: []string{"a", "b"}}, {Key: "region", Values: []string{""}}}
			}},
		{"customers", "customer_id=c2&customer_id=c1&customer_id=c2", func(q *usage.Query) {
			q.CustomerIDs = []string{"c1", "c2"}
		}},
		{"exactly the window limit", "window_size=MINUTE&from=2024-01-01T00:00:00Z&to=2024-01-07T22:40:00Z", func(q *usage.Query) {
			q.WindowSize = usage.WindowMinute
			q.From, q.To = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(MaxWindows*time.Minute)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, errs := parseUsageParams("acme", &meter, values, paramsNow)
			if len(errs) > 0 {
				t.Fatalf("errors: %v", joinMessages(errs))
			}
			want := base
			tt.want(&want)
			if !got.From.Equal(want.From) || !got.To.Equal(want.To) {
				t.Errorf("range [%s, %s), want [%s, %s)", got.From, got.To, want.From, want.To)
			}
			got.From, got.To, want.From, want.To = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			if got.Location.String() != want.Location.String() {
				t.Errorf("zone %s, want %s", got.Location, want.Location)
			}
			got.Location, want.Location = nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestParseUsageParamsErrors checks that every rejected query names the
// parameter at fault and says what to do.
func TestParseUsageParamsErrors(t *testing.T) {
	meter := testMeter(t)
	manyCustomers := url.Values{}
	for i := range maxValues + 1 {
		manyCustomers.Add("customer_id", fmt.Sprintf("c%d", i))
	}
	tests := []struct {
		query     string
		wantParam string
		wantMsg   string
	}{
		{"window_sise=DAY", "window_sise", "unknown parameter"},
		{"org_id=globex", "org_id", "unknown parameter"},
		{"filter=model", "filter", "unknown parameter"},
		{"from=2024-03-01T00:00:00Z&from=2024-03-02T00:00:00Z", "from", "given 2 times"},
		{"from=yesterday", "from", "RFC 3339"},
		{"from=2024-03-01", "from", "RFC 3339"},
		{"from=2024-03-01T00:00:00+05:30", "from", "%2B"}, // '+' unescaped arrives as a space
		{"to=2024-03-01T00:00:00", "to", "RFC 3339"},
		{"from=1969-12-31T23:59:59Z", "from", "outside the range"},
		{"to=2200-01-01T00:00:00Z", "to", "outside the range"},
		{"from=2024-03-02T00:00:00Z&to=2024-03-01T00:00:00Z", "from", "must be before to"},
		{"from=2024-03-01T00:00:00Z&to=2024-03-01T00:00:00Z", "from", "must be before to"},
		{"to=2024-03-01T00:00:00Z", "from", "defaults to the start of the current month"},
		{"window_size=WEEK", "window_size", "must be one of"},
		{"window_size=", "window_size", "must be one of"},
		{"window_time_zone=Mars/Olympus_Mons", "window_time_zone", "unknown time zone"},
		{"window_time_zone=Local", "window_time_zone", "IANA time zone"},
		{"window_time_zone=", "window_time_zone", "IANA time zone"},
		{"window_time_zone=../../etc/passwd", "window_time_zone", "IANA time zone"},
		{"window_time_zone=UTC'),(1", "window_time_zone", "IANA time zone"},
		{"group_by=colour", "group_by", `no group key "colour"`},
		{"group_by=model,", "group_by", `no group key ""`},
		{"filter[colour]=red", "filter[colour]", `no group key "colour"`},
		{"filter[]=red", "filter[]", `no group key ""`},
		{"customer_id=", "customer_id", "1 to 256 characters"},
		{"customer_id=" + strings.Repeat("x", 257), "customer_id", "1 to 256 characters"},
		{manyCustomers.Encode(), "customer_id", "at most 1000"},
		{"window_size=MINUTE&from=2024-01-01T00:00:00Z&to=2024-01-07T22:40:00.000000001Z", "window_size", "more than 10000 MINUTE windows"},
		{"window_size=HOUR&from=2023-01-01T00:00:00Z&to=2024-03-01T00:00:00Z", "window_size", "use a larger window_size"},
		{"window_size=DAY&from=1990-01-01T00:00:00Z&to=2024-03-01T00:00:00Z", "window_size", "more than 10000 DAY windows"},
	}
	for _, tt := range tests {
		name := tt.query
		if len(name) > 80 {
			name = name[:80]
		}
		t.Run(name, func(t *testing.T) {
			values, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			_, errs := parseUsageParams("acme", &meter, values, paramsNow)
			for _, e := range errs {
				if e.Field == tt.wantParam && strings.Contains(e.Message, tt.wantMsg) {
					return
				}
			}
			t.Errorf("want an error on %s containing %q, got %q", tt.wantParam, tt.wantMsg, joinMessages(errs))
		})
	}
}

// TestParseUsageParamsReportsEverything: a request with several mistakes
// learns about all of them at once.
func TestParseUsageParamsReportsEverything(t *testing.T) {
	meter := testMeter(t)
	values, _ := url.ParseQuery("window_sise=DAY&window_time_zone=Nowhere/Land&group_by=colour")
	_, errs := parseUsageParams("acme", &meter, values, paramsNow)
	var fields []string
	for _, e := range errs {
		fields = append(fields, e.Field)
	}
	if want := []string{"window_sise", "window_time_zone", "group_by"}; !reflect.DeepEqual(fields, want) {
		t.Errorf("fields %v, want %v", fields, want)
	}
}

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

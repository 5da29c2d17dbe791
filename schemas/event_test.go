package schemas_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/schemas"
)

// event builds a JSON event from a valid one: each field of overrides
// replaces (or, as the Go value absentField, removes) a field. Values are
// raw JSON text.
func event(overrides map[string]string) []byte {
	fields := map[string]string{
		"id":          `"evt-1"`,
		"type":        `"api_call"`,
		"customer_id": `"cust-1"`,
	}
	for k, v := range overrides {
		if v == absentField {
			delete(fields, k)
		} else {
			fields[k] = v
		}
	}
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	for _, k := range []string{"id", "type", "customer_id", "subject", "time", "source", "properties", "data", "specversion"} {
		v, ok := fields[k]
		if !ok {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&b, "%q:%s", k, v)
	}
	b.WriteByte('}')
	return b.Bytes()
}

const absentField = "\x00absent"

func quoted(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func rfc3339(t time.Time) string { return quoted(t.Format(time.RFC3339Nano)) }

// TestParseEventFieldErrors checks that every way a field can be wrong is
// rejected with a *FieldError naming exactly that field.
func TestParseEventFieldErrors(t *testing.T) {
	type stringField struct {
		name     string
		max      int
		optional bool
	}
	stringFields := []stringField{
		{"id", schemas.MaxEventIDLen, false},
		{"type", schemas.MaxEventTypeLen, false},
		{"customer_id", schemas.MaxCustomerIDLen, false},
		{"source", schemas.MaxSourceLen, true},
	}
	type testCase struct {
		name  string
		raw   []byte
		field string
	}
	var cases []testCase
	for _, f := range stringFields {
		if !f.optional {
			cases = append(cases,
				testCase{f.name + " missing", event(map[string]string{f.name: absentField}), f.name},
				testCase{f.name + " null", event(map[string]string{f.name: `null`}), f.name},
			)
		}
		cases = append(cases,
			testCase{f.name + " empty", event(map[string]string{f.name: `""`}), f.name},
			testCase{f.name + " number", event(map[string]string{f.name: `42`}), f.name},
			testCase{f.name + " boolean", event(map[string]string{f.name: `true`}), f.name},
			testCase{f.name + " object", event(map[string]string{f.name: `{"a":"b"}`}), f.name},
			testCase{f.name + " array", event(map[string]string{f.name: `["a"]`}), f.name},
			testCase{f.name + " one character too long", event(map[string]string{f.name: quoted(strings.Repeat("a", f.max+1))}), f.name},
			testCase{f.name + " multibyte one character too long", event(map[string]string{f.name: quoted(strings.Repeat("é", f.max+1))}), f.name},
			testCase{f.name + " invalid UTF-8", event(map[string]string{f.name: "\"a\xffb\""}), f.name},
			testCase{f.name + " truncated UTF-8", event(map[string]string{f.name: "\"a\xe2\x82\""}), f.name},
			testCase{f.name + " lone high surrogate", event(map[string]string{f.name: `"a\ud800b"`}), f.name},
			testCase{f.name + " lone low surrogate", event(map[string]string{f.name: `"a\udc00"`}), f.name},
			testCase{f.name + " reversed surrogate pair", event(map[string]string{f.name: `"\ude00\ud83d"`}), f.name},
		)
	}
	cases = append(cases, []testCase{
		// CloudEvents' subject stands in for customer_id; its errors name it.
		{"subject empty", event(map[string]string{"customer_id": absentField, "subject": `""`}), "subject"},
		{"subject number", event(map[string]string{"customer_id": absentField, "subject": `7`}), "subject"},
		{"subject too long", event(map[string]string{"customer_id": absentField, "subject": quoted(strings.Repeat("s", schemas.MaxCustomerIDLen+1))}), "subject"},
		{"subject null and customer_id missing", event(map[string]string{"customer_id": absentField, "subject": `null`}), "customer_id"},
		{"customer_id invalid while subject valid", event(map[string]string{"customer_id": `5`, "subject": `"s"`}), "customer_id"},
		{"customer_id empty while subject valid", event(map[string]string{"customer_id": `""`, "subject": `"s"`}), "customer_id"},

		{"time not RFC 3339: space", event(map[string]string{"time": `"2026-03-15 12:00:00Z"`}), "time"},
		{"time not RFC 3339: date only", event(map[string]string{"time": `"2026-03-15"`}), "time"},
		{"time not RFC 3339: no zone", event(map[string]string{"time": `"2026-03-15T12:00:00"`}), "time"},
		{"time not RFC 3339: unix seconds as string", event(map[string]string{"time": `"1773576000"`}), "time"},
		{"time not RFC 3339: RFC 1123", event(map[string]string{"time": `"Sun, 15 Mar 2026 12:00:00 GMT"`}), "time"},
		{"time empty", event(map[string]string{"time": `""`}), "time"},
		{"time number", event(map[string]string{"time": `1773576000`}), "time"},
		{"time object", event(map[string]string{"time": `{}`}), "time"},
		{"time far future", event(map[string]string{"time": `"2027-01-01T00:00:00Z"`}), "time"},
		{"time far past", event(map[string]string{"time": `"2020-01-01T00:00:00Z"`}), "time"},

		{"properties array", event(map[string]string{"properties": `[1,2]`}), "properties"},
		{"properties string", event(map[string]string{"properties": `"{}"`}), "properties"},
		{"properties number", event(map[string]string{"properties": `1`}), "properties"},
		{"properties boolean", event(map[string]string{"properties": `false`}), "properties"},
		{"properties invalid UTF-8", event(map[string]string{"properties": "{\"a\":\"\xff\"}"}), "properties"},
		{"properties invalid UTF-8 key", event(map[string]string{"properties": "{\"\xc3\":1}"}), "properties"},
		{"properties lone surrogate", event(map[string]string{"properties": `{"a":"\udbff"}`}), "properties"},
		{"data array", event(map[string]string{"data": `[]`}), "data"},
		{"data string", event(map[string]string{"data": `"x"`}), "data"},
		{"data invalid when properties null", event(map[string]string{"properties": `null`, "data": `7`}), "data"},
		{"properties invalid while data valid", event(map[string]string{"properties": `7`, "data": `{}`}), "properties"},

		{"event is an array", []byte(`[{"id":"a"}]`), "event"},
		{"event is a string", []byte(`"event"`), "event"},
		{"event is a number", []byte(`12`), "event"},
		{"event is empty input", []byte(``), "event"},
		{"event is truncated", []byte(`{"id":"a"`), "event"},
		{"event has trailing data", append(event(nil), []byte(` {}`)...), "event"},
		{"event is null", []byte(`null`), "id"},
		{"event is an empty object", []byte(`{}`), "id"},
	}...)

	rules := schemas.EventRules{Now: testNow}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := schemas.ParseEvent(tc.raw, rules)
			if err == nil {
				t.Fatalf("ParseEvent(%s) = %+v, want an error naming %q", tc.raw, ev, tc.field)
			}
			var fe *schemas.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseEvent(%s) error %q is %T, want *schemas.FieldError", tc.raw, err, err)
			}
			if fe.Field != tc.field {
				t.Errorf("ParseEvent(%s) error names %q (%v), want %q", tc.raw, fe.Field, err, tc.field)
			}
			if fe.Message == "" || !strings.HasPrefix(err.Error(), tc.field+": ") {
				t.Errorf("error text %q should be %q followed by a message", err, tc.field+": ")
			}
			if !ev.Time.IsZero() || ev.ID != "" {
				t.Errorf("a rejected event must be the zero Event, got %+v", ev)
			}
		})
	}
}

// TestParseEventLengthsCountCharacters checks that the length limits count
// characters, not bytes, at exactly the limit.
func TestParseEventLengthsCountCharacters(t *testing.T) {
	for _, tc := range []struct {
		field string
		max   int
	}{
		{"id", schemas.MaxEventIDLen},
		{"type", schemas.MaxEventTypeLen},
		{"customer_id", schemas.MaxCustomerIDLen},
		{"source", schemas.MaxSourceLen},
	} {
		for _, char := range []string{"a", "é", "日", "😀"} {
			value := strings.Repeat(char, tc.max)
			ev, err := schemas.ParseEvent(event(map[string]string{tc.field: quoted(value)}), schemas.EventRules{Now: testNow})
			if err != nil {
				t.Errorf("%s of %d × %q (%d bytes): %v", tc.field, tc.max, char, len(value), err)
				continue
			}
			got := map[string]string{"id": ev.ID, "type": ev.Type, "customer_id": ev.CustomerID, "source": ev.Source}[tc.field]
			if got != value {
				t.Errorf("%s = %q, want %q", tc.field, got, value)
			}
		}
	}
}

func TestParseEventUnicode(t *testing.T) {
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"escaped surrogate pair", `"\ud83d\ude00"`, "😀"},
		{"literal emoji", `"😀"`, "😀"},
		{"escaped BMP character", `"caf\u00e9"`, "café"},
		{"escaped backslash before u", `"a\\ud800"`, `a\ud800`},
		{"escaped replacement character", `"\ufffd"`, "\ufffd"},
		{"literal replacement character", "\"\xef\xbf\xbd\"", "\ufffd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := schemas.ParseEvent(event(map[string]string{"id": tc.raw}), schemas.EventRules{Now: testNow})
			if err != nil {
				t.Fatal(err)
			}
			if ev.ID != tc.want {
				t.Errorf("id = %q, want %q", ev.ID, tc.want)
			}
		})
	}
	// Two ids that differ only in their invalid bytes must not both be
	// accepted as the same id: the second would be dropped as a duplicate.
	_, err1 := schemas.ParseEvent(event(map[string]string{"id": "\"\xff\""}), schemas.EventRules{Now: testNow})
	_, err2 := schemas.ParseEvent(event(map[string]string{"id": "\"\xfe\""}), schemas.EventRules{Now: testNow})
	if err1 == nil || err2 == nil {
		t.Errorf("ids with invalid UTF-8 accepted (%v, %v); they would both become U+FFFD", err1, err2)
	}
}

func TestParseEventValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  []byte
		want schemas.Event
	}{
		{
			name: "minimal event gets the arrival time",
			raw:  event(nil),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Time: testNow},
		},
		{
			name: "null time is the arrival time",
			raw:  event(map[string]string{"time": `null`}),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Time: testNow},
		},
		{
			name: "every field",
			raw: event(map[string]string{
				"time":       `"2026-03-15T11:59:59.123456789Z"`,
				"source":     `"svc-a"`,
				"properties": `{ "tokens" : 12.50 , "model": "gpt", "nested": {"a": [1, 2]} }`,
			}),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Source: "svc-a",
				Time:       time.Date(2026, 3, 15, 11, 59, 59, 123456789, time.UTC),
				Properties: json.RawMessage(`{"tokens":12.50,"model":"gpt","nested":{"a":[1,2]}}`)},
		},
		{
			name: "time with offset becomes UTC",
			raw:  event(map[string]string{"time": `"2026-03-15T13:30:00+01:30"`}),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Time: testNow},
		},
		{
			name: "subject stands in for customer_id",
			raw:  event(map[string]string{"customer_id": absentField, "subject": `"cust-9"`}),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-9", Time: testNow},
		},
		{
			name: "subject stands in for null customer_id",
			raw:  event(map[string]string{"customer_id": `null`, "subject": `"cust-9"`}),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-9", Time: testNow},
		},
		{
			name: "customer_id wins over subject",
			raw:  event(map[string]string{"customer_id": `"cust-1"`, "subject": `"cust-9"`}),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Time: testNow},
		},
		{
			name: "customer_id wins over an invalid subject",
			raw:  event(map[string]string{"customer_id": `"cust-1"`, "subject": `42`}),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Time: testNow},
		},
		{
			name: "data stands in for properties",
			raw:  event(map[string]string{"data": `{"tokens": 3}`}),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Time: testNow,
				Properties: json.RawMessage(`{"tokens":3}`)},
		},
		{
			name: "data stands in for null properties",
			raw:  event(map[string]string{"properties": `null`, "data": `{"tokens": 3}`}),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Time: testNow,
				Properties: json.RawMessage(`{"tokens":3}`)},
		},
		{
			name: "properties win over data",
			raw:  event(map[string]string{"properties": `{"a":1}`, "data": `{"b":2}`}),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Time: testNow,
				Properties: json.RawMessage(`{"a":1}`)},
		},
		{
			name: "properties win over invalid data",
			raw:  event(map[string]string{"properties": `{"a":1}`, "data": `"text"`}),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Time: testNow,
				Properties: json.RawMessage(`{"a":1}`)},
		},
		{
			name: "null properties are absent",
			raw:  event(map[string]string{"properties": `null`}),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Time: testNow},
		},
		{
			name: "null data is absent",
			raw:  event(map[string]string{"data": `null`}),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Time: testNow},
		},
		{
			name: "empty properties object is kept",
			raw:  event(map[string]string{"properties": ` { } `}),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Time: testNow,
				Properties: json.RawMessage(`{}`)},
		},
		{
			name: "properties keep HTML characters and exact numbers",
			raw:  event(map[string]string{"properties": `{"q": "<a&b>", "n": 12345678901234567890123456.000000000001}`}),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Time: testNow,
				Properties: json.RawMessage(`{"q":"<a&b>","n":12345678901234567890123456.000000000001}`)},
		},
		{
			name: "null source is absent",
			raw:  event(map[string]string{"source": `null`}),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Time: testNow},
		},
		{
			name: "unknown CloudEvents attributes are ignored",
			raw:  event(map[string]string{"specversion": `"1.0"`}),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Time: testNow},
		},
		{
			name: "surrounding whitespace",
			raw:  append(append([]byte(" \n\t"), event(nil)...), '\n'),
			want: schemas.Event{ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Time: testNow},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := schemas.ParseEvent(tc.raw, schemas.EventRules{Now: testNow})
			if err != nil {
				t.Fatalf("ParseEvent(%s): %v", tc.raw, err)
			}
			assertEventEqual(t, got, tc.want)
		})
	}
}

func assertEventEqual(t *testing.T, got, want schemas.Event) {
	t.Helper()
	if got.ID != want.ID || got.Type != want.Type || got.CustomerID != want.CustomerID || got.Source != want.Source {
		t.Errorf("event = %+v\nwant    %+v", got, want)
	}
	if !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC {
		t.Errorf("time = %v (%v), want %v in UTC", got.Time, got.Time.Location(), want.Time)
	}
	if !bytes.Equal(got.Properties, want.Properties) || (got.Properties == nil) != (want.Properties == nil) {
		t.Errorf("properties = %q, want %q", got.Properties, want.Properties)
	}
}

// TestParseEventTimeRules checks the time window at its exact boundaries.
func TestParseEventTimeRules(t *testing.T) {
	const ns = time.Nanosecond
	for _, tc := range []struct {
		name   string
		maxAge time.Duration
		time   time.Time
		ok     bool
	}{
		{"now", 0, testNow, true},
		{"exactly the allowed future skew", 0, testNow.Add(schemas.MaxFutureSkew), true},
		{"one nanosecond beyond the future skew", 0, testNow.Add(schemas.MaxFutureSkew + ns), false},
		{"one second beyond the future skew", 0, testNow.Add(schemas.MaxFutureSkew + time.Second), false},
		{"exactly the default maximum age", 0, testNow.Add(-schemas.DefaultMaxEventAge), true},
		{"one nanosecond older than the default maximum age", 0, testNow.Add(-schemas.DefaultMaxEventAge - ns), false},
		{"exactly a custom maximum age", time.Hour, testNow.Add(-time.Hour), true},
		{"one nanosecond older than a custom maximum age", time.Hour, testNow.Add(-time.Hour - ns), false},
		{"custom maximum age longer than the default", 90 * 24 * time.Hour, testNow.Add(-60 * 24 * time.Hour), true},
		{"negative maximum age means the default", -time.Hour, testNow.Add(-schemas.DefaultMaxEventAge), true},
		{"negative maximum age means the default, just beyond", -time.Hour, testNow.Add(-schemas.DefaultMaxEventAge - ns), false},
		{"custom maximum age keeps the future skew", time.Hour, testNow.Add(schemas.MaxFutureSkew + ns), false},
		{"before 1970 even when the age allows it", 100 * 365 * 24 * time.Hour, time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), false},
		{"1970 when the age allows it", 100 * 365 * 24 * time.Hour, time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := event(map[string]string{"time": rfc3339(tc.time)})
			ev, err := schemas.ParseEvent(raw, schemas.EventRules{Now: testNow, MaxAge: tc.maxAge})
			if !tc.ok {
				var fe *schemas.FieldError
				if !errors.As(err, &fe) || fe.Field != "time" {
					t.Fatalf("ParseEvent(%s) = %v, want a time error", raw, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEvent(%s): %v", raw, err)
			}
			if !ev.Time.Equal(tc.time) {
				t.Errorf("time = %v, want %v", ev.Time, tc.time)
			}
		})
	}
}

// TestParseEventZeroNowUsesClock checks that EventRules without Now fall
// back to the wall clock.
func TestParseEventZeroNowUsesClock(t *testing.T) {
	before := time.Now()
	ev, err := schemas.ParseEvent(event(nil), schemas.EventRules{})
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Time.Before(before.Truncate(time.Second)) || ev.Time.After(after) || ev.Time.Location() != time.UTC {
		t.Errorf("default time %v not between %v and %v in UTC", ev.Time, before, after)
	}
	// A recent explicit time is accepted against the wall clock too.
	raw := event(map[string]string{"time": rfc3339(time.Now().Add(-time.Minute))})
	if _, err := schemas.ParseEvent(raw, schemas.EventRules{}); err != nil {
		t.Errorf("ParseEvent(%s) against the wall clock: %v", raw, err)
	}
}

// FuzzParseTimeFast holds ParseEvent's reading of the usual form of a
// time to time.Parse: whatever it reads, time.Parse reads as the same
// instant, and it reads the usual forms. Run it for minutes after any
// change to parseTimeFast:
//
//	go test -run '^$' -fuzz FuzzParseTimeFast -fuzztime 3m ./schemas/
func FuzzParseTimeFast(f *testing.F) {
	for _, seed := range []string{
		"2026-03-15T12:00:00Z", "2026-03-15T12:00:00.1Z", "2026-03-15T12:00:00.123456789+05:30", "2024-02-29T23:59:59-23:59",
		"2026-02-29T12:00:00Z", "2026-03-15T24:00:00Z", "2026-03-15T12:00:60Z", "2026-03-15T12:00:00.Z", "2026-03-15T12:00:00.1234567890Z",
		"2026-03-15T12:00:00+24:00", "2026-03-15T12:00:00+05:60", "2026-03-15t12:00:00z", "2026-03-15T12:00:00,5Z", "0000-01-01T00:00:00Z",
		"2026-3-15T12:00:00Z", "2026-03-15T12:00:00+0530", "+026-03-15T12:00:00Z", "2026-03-15T1:00:00Z", "9999-12-31T23:59:59.999999999-00:00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := schemas.ParseTimeFast([]byte(s))
		want, err := time.Parse(time.RFC3339Nano, s)
		if ok && (err != nil || !got.Equal(want) || got.Location() != time.UTC) {
			t.Fatalf("ParseTimeFast(%q) = %v; time.Parse: %v, %v", s, got, want, err)
		}
		// The form time.Format writes is read, in UTC or at an offset.
		if err == nil && want.Year() >= 0 && want.Year() <= 9999 {
			for _, loc := range []*time.Location{time.UTC, time.FixedZone("", -(5*3600 + 30*60))} {
				text := want.In(loc).Format(time.RFC3339Nano)
				if y := want.In(loc).Year(); y < 0 || y > 9999 {
					continue
				}
				if back, ok := schemas.ParseTimeFast([]byte(text)); !ok || !back.Equal(want) {
					t.Fatalf("ParseTimeFast(%q) = %v, %v; want %v", text, back, ok, want)
				}
			}
		}
	})
}

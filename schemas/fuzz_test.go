package schemas_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"
	"github.com/tally-oss/tally/schemas"
)

// Run a fuzzer with, for example:
//
//	go test -run '^$' -fuzz FuzzParseEvent -fuzztime 30s ./schemas/
//
// Inputs that once failed are kept in testdata/fuzz/<FuzzName>/ and run
// with every go test.

func FuzzParseEvent(f *testing.F) {
	for _, seed := range []string{
		`{"id":"e1","type":"t","customer_id":"c"}`,
		`{"id":"e1","type":"t","subject":"c","data":{"a":1},"time":"2026-03-15T12:00:00Z","source":"s","specversion":"1.0"}`,
		`{"id":"e1","type":"t","customer_id":"c","properties":{"n":0.1,"s":"<&>","u":"\u2028","nested":{"x":[1,{"y":null}]}}}`,
		`{"id":"\ud83d\ude00","type":"\u00e9","customer_id":"a/b","time":"2026-03-15T12:04:59.999999999+00:00"}`,
		`{"id":"\ud800","type":"t","customer_id":"c"}`,
		"{\"id\":\"\xff\",\"type\":\"t\",\"customer_id\":\"c\"}",
		`{"id":"e1","type":"t","customer_id":"c","properties":[1]}`,
		`{"id":1,"type":null,"customer_id":{}}`,
		`{"ID":"e1","Type":"t","CUSTOMER_ID":"c"}`,
		`{"id":"e1","type":"t","customer_id":"c","id":"e2","properties":{"a":1,"a":2}}`,
		`{"id":"e1","type":"t","customer_id":"c","properties":{"n":1e25,"m":-0.5e-3,"d":[[[[{"x":1E+2}]]]]} }`,
		`{"id":"e1","type":"t","customer_id":"c","properties":{"n":1e26},"x":{"\u0041":[1,2,{"b":"\n"}]}}`,
		`[]`, `null`, `""`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	rules := schemas.EventRules{Now: testNow}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := schemas.ParseEvent(raw, rules)
		sameRecord(t, raw, rules, ev, err)
		if err != nil {
			var fe *schemas.FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("ParseEvent(%q) error %v is not a *FieldError naming a field", raw, err)
			}
			// ParseEvent's own scanner and encoding/json agree on what is
			// JSON (a limit may be found before a syntax error further on).
			if invalid := fe.Field == "event" && strings.HasPrefix(fe.Message, "invalid JSON"); invalid && json.Valid(raw) {
				t.Fatalf("ParseEvent(%q) = %v, but json.Valid = %v", raw, err, json.Valid(raw))
			}
			return
		}
		if !json.Valid(raw) {
			t.Fatalf("ParseEvent accepted %q, which encoding/json refuses", raw)
		}
		checkEvent(t, raw, ev)

		// ingest -> Kafka -> aggregator keeps the event exactly.
		key, value, err := schemas.EncodeRecord(schemas.Record{OrgID: "org", Event: ev, IngestedAt: testNow})
		if err != nil {
			t.Fatalf("EncodeRecord of accepted event %q: %v", raw, err)
		}
		if string(key) != "org/"+ev.CustomerID {
			t.Fatalf("key %q", key)
		}
		rec, err := schemas.DecodeRecord(value)
		if err != nil {
			t.Fatalf("DecodeRecord(%s) of accepted event %q: %v", value, raw, err)
		}
		if !sameEvent(rec.Event, ev) || rec.OrgID != "org" || !rec.IngestedAt.Equal(testNow) {
			t.Fatalf("record round trip of %q:\n got %+v\nwant %+v", raw, rec.Event, ev)
		}
		props, err := schemas.DecodeProperties(rec.Event.Properties)
		if err != nil {
			t.Fatalf("DecodeProperties(%s) of accepted event: %v", rec.Event.Properties, err)
		}
		evaluateAll(t, props)

		// An accepted event, written back as JSON, is accepted as itself.
		again, err := schemas.ParseEvent(marshalNoEscape(t, ev), rules)
		if err != nil {
			t.Fatalf("ParseEvent of re-encoded %+v: %v", ev, err)
		}
		if !sameEvent(again, ev) {
			t.Fatalf("ParseEvent is not stable:\n got %+v\nwant %+v", again, ev)
		}
	})
}

// sameRecord checks that a RecordBuilder, after an event that fills its
// scanner's memory, reads raw as ParseEvent did (ev, err) and writes the
// record EncodeRecord writes for ev.
func sameRecord(t *testing.T, raw []byte, rules schemas.EventRules, ev schemas.Event, err error) {
	t.Helper()
	input := bytes.Clone(raw)
	b := schemas.NewRecordBuilder("org", testNow, rules, 1, len(raw)%512) // a second buffer, sometimes
	first := `{"id":"e0","type":"t","customer_id":"c","properties":{"a":[{"b":{"c":[1,{"d":2}]}}],"e":1,"f":2,"g":3,"h":4,"i":5,"j":6,"k":7,"l":8,"m":9,"n":10,"o":11,"p":12,"q":13,"r":14,"s":15,"t":16}}`
	if _, _, perr, eerr := b.Add([]byte(first)); perr != nil || eerr != nil {
		t.Fatalf("RecordBuilder.Add(%s): %v, %v", first, perr, eerr)
	}
	key, value, parseErr, encodeErr := b.Add(raw)
	if !bytes.Equal(raw, input) {
		t.Fatalf("RecordBuilder changed its input %q to %q", input, raw)
	}
	if (parseErr == nil) != (err == nil) || (err != nil && (parseErr.Error() != err.Error() || !reflect.DeepEqual(parseErr, err))) {
		t.Fatalf("RecordBuilder.Add(%q): error %#v, ParseEvent: %#v", raw, parseErr, err)
	}
	if err != nil {
		if key != nil || value != nil || encodeErr != nil {
			t.Fatalf("RecordBuilder.Add(%q) = %q, %q, %v after %v", raw, key, value, encodeErr, err)
		}
		return
	}
	wantKey, wantValue, wantErr := schemas.EncodeRecord(schemas.Record{OrgID: "org", Event: ev, IngestedAt: testNow})
	if (encodeErr == nil) != (wantErr == nil) || (wantErr != nil && encodeErr.Error() != wantErr.Error()) {
		t.Fatalf("RecordBuilder.Add(%q): encoding error %v, EncodeRecord: %v", raw, encodeErr, wantErr)
	}
	if !bytes.Equal(key, wantKey) || !bytes.Equal(value, wantValue) {
		t.Fatalf("RecordBuilder.Add(%q):\n key %q value %s\nEncodeRecord: key %q value %s", raw, key, value, wantKey, wantValue)
	}
}

func checkEvent(t *testing.T, raw []byte, ev schemas.Event) {
	t.Helper()
	for _, f := range []struct {
		name, value string
		max         int
		optional    bool
	}{
		{"id", ev.ID, schemas.MaxEventIDLen, false},
		{"type", ev.Type, schemas.MaxEventTypeLen, false},
		{"customer_id", ev.CustomerID, schemas.MaxCustomerIDLen, false},
		{"source", ev.Source, schemas.MaxSourceLen, true},
	} {
		if f.value == "" && !f.optional {
			t.Fatalf("ParseEvent(%q) accepted an empty %s", raw, f.name)
		}
		if !utf8.ValidString(f.value) || utf8.RuneCountInString(f.value) > f.max {
			t.Fatalf("ParseEvent(%q) accepted %s %q", raw, f.name, f.value)
		}
	}
	if ev.Time.Location() != time.UTC || ev.Time.After(testNow.Add(schemas.MaxFutureSkew)) ||
		ev.Time.Before(testNow.Add(-schemas.DefaultMaxEventAge)) {
		t.Fatalf("ParseEvent(%q) accepted time %v", raw, ev.Time)
	}
	if ev.Properties != nil {
		var obj map[string]any
		if err := json.Unmarshal(ev.Properties, &obj); err != nil || obj == nil {
			t.Fatalf("ParseEvent(%q) accepted properties %q that are not an object: %v", raw, ev.Properties, err)
		}
		if !utf8.Valid(ev.Properties) {
			t.Fatalf("ParseEvent(%q) accepted properties that are not UTF-8", raw)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, ev.Properties); err != nil || !bytes.Equal(compact.Bytes(), ev.Properties) {
			t.Fatalf("properties %q are not compact", ev.Properties)
		}
		checkPropertyLimits(t, ev.Properties)
	}
}

func sameEvent(a, b schemas.Event) bool {
	return a.ID == b.ID && a.Type == b.Type && a.CustomerID == b.CustomerID && a.Source == b.Source &&
		a.Time.Equal(b.Time) && bytes.Equal(a.Properties, b.Properties)
}

func marshalNoEscape(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fuzzMeters are evaluated against fuzzed properties.
var fuzzMeters = []string{
	`{"key":"c","event_type":"e","aggregation":"COUNT","group_by":{"g":"$.g","h":"$.a.b"}}`,
	`{"key":"s","event_type":"e","aggregation":"SUM","value_property":"$.v","filter":{"s":{"ne":"x","in":["a",1,true]},"or":[{"v":{"gt":0}},{"not":{"v":{"exists":true}}}]}}`,
	`{"key":"u","event_type":"e","aggregation":"UNIQUE_COUNT","value_property":"$.a.b","group_by":{"v":"v"}}`,
	`{"key":"l","event_type":"e","aggregation":"LATEST","value_property":"g","filter":{"$.v":{"gte":-1e5,"lte":1e25,"eq":1.5}}}`,
}

func evaluateAll(t *testing.T, props map[string]any) {
	t.Helper()
	for _, def := range fuzzMeters {
		m, err := schemas.ParseMeter([]byte(def))
		if err != nil {
			t.Fatal(err)
		}
		r, matched, err := m.Evaluate(props)
		if err != nil {
			var ee *schemas.EvalError
			if !errors.As(err, &ee) || ee.Reason == "" || !matched {
				t.Fatalf("Evaluate error %v (matched %v) is not an EvalError of a matched event", err, matched)
			}
			continue
		}
		if !matched {
			continue
		}
		if len(r.GroupValues) != len(m.GroupKeys()) {
			t.Fatalf("%d group values for %d keys", len(r.GroupValues), len(m.GroupKeys()))
		}
		if m.Aggregation.IsNumeric() {
			if r.Value.Abs().GreaterThanOrEqual(decimal.New(1, 26)) || !r.Value.Round(12).Equal(r.Value) {
				t.Fatalf("value %s does not fit Decimal(38, 12)", r.Value)
			}
		}
	}
}

func FuzzParseMeter(f *testing.F) {
	for _, seed := range append([]string{
		`{"key":"tokens","event_type":"llm","aggregation":"sum","value_property":"usage.tokens","group_by":{"model":"model"},"name":"n","description":"d","revision":3,"created_at":"2026-03-01T10:00:00.5+02:00"}`,
		`{"key":"k","event_type":"e","aggregation":"COUNT","filter":{"a":{"eq":1.0,"ne":"x","in":[true,"y",2e3],"gt":-1,"gte":0.5,"lt":1e10,"lte":99,"exists":true},"and":[{"b":{"exists":false}}],"or":[{"c":{"eq":false}},{"not":{"d":{"ne":0}}}],"not":{"$.and":{"eq":"x"}}}}`,
		`{"key":"k","event_type":"e","aggregation":"COUNT","filter":{"and":[{"a":{"eq":1}},{"status":{"gt":"x"}}]}}`,
		`{"key":"k","event_type":"e","aggregation":"COUNT","filter":{"n":{"gt":1e10000}}}`,
		`{"key":"K","aggregation":"AVERAGE","group_by":{"customer_id":"$.c"},"filters":{}}`,
		`{"key":"k","event_type":"e","aggregation":"COUNT"} {}`,
		`[]`, `null`, `{}`, ``,
	}, fuzzMeters...) {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := schemas.ParseMeter(raw)
		if err != nil {
			// Every problem names its field.
			fieldErrors(t, err)
			return
		}
		if !schemas.MeterKeyPattern.MatchString(m.Key) || m.EventType == "" || !slices.Contains(schemas.Aggregations, m.Aggregation) {
			t.Fatalf("ParseMeter(%q) accepted %+v", raw, m)
		}
		for _, k := range m.GroupKeys() {
			if !schemas.GroupKeyPattern.MatchString(k) || k == schemas.CustomerGroupKey {
				t.Fatalf("ParseMeter(%q) accepted group key %q", raw, k)
			}
		}
		// Stored and read back, it is the same meter.
		stored, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("json.Marshal of meter parsed from %q: %v", raw, err)
		}
		back, err := schemas.ParseMeter(stored)
		if err != nil {
			t.Fatalf("ParseMeter of stored %s (from %q): %v", stored, raw, err)
		}
		if !schemas.SameDefinition(m, back) {
			t.Fatalf("stored %s (from %q) is another definition", stored, raw)
		}
		again, err := json.Marshal(back)
		if err != nil || !bytes.Equal(again, stored) {
			t.Fatalf("stored form is not stable:\n%s\n%s (%v)", stored, again, err)
		}
		// It evaluates any properties without panicking.
		for _, props := range []string{`{}`, `{"a":1,"b":"x","v":0.5,"g":true,"status":{"x":[1]}}`} {
			_, _, err := m.Evaluate(mustProps(t, props))
			var ee *schemas.EvalError
			if err != nil && !errors.As(err, &ee) {
				t.Fatalf("Evaluate: %v", err)
			}
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range []schemas.Record{
		{OrgID: "org", Event: schemas.Event{ID: "e", Type: "t", CustomerID: "c", Time: testNow}, IngestedAt: testNow},
		{OrgID: "org_1", Event: schemas.Event{ID: "😀", Type: "t", CustomerID: "a/b", Source: "<s>",
			Time: testNow.Add(time.Nanosecond), Properties: json.RawMessage(`{"n":0.1,"s":"<&>\u2028"}`)}, IngestedAt: testNow},
	} {
		_, value, err := schemas.EncodeRecord(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(value)
	}
	for _, seed := range []string{
		`{"v":1,"org_id":"o","id":"e","type":"t","customer_id":"c","time":"2026-03-15T12:00:00+05:00","properties":{ "a" : [ 1 ] },"ingested_at":"2026-03-15T12:00:00Z"}`,
		`{"v":1,"org_id":"o","id":"e","type":"t","customer_id":"c","time":"2026-03-15T12:00:00Z","properties":null}`,
		`{"v":2}`, `{"v":"1"}`, `null`, `[]`, ``, `{"v":1,"time":""}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		rec, err := schemas.DecodeRecord(value)
		if err != nil {
			if !errors.Is(err, schemas.ErrRecord) {
				t.Fatalf("DecodeRecord(%q) error %v does not wrap ErrRecord", value, err)
			}
			return
		}
		if rec.OrgID == "" || rec.Event.ID == "" || rec.Event.Type == "" || rec.Event.CustomerID == "" || rec.Event.Time.IsZero() {
			t.Fatalf("DecodeRecord(%q) accepted %+v", value, rec)
		}
		if rec.Event.Time.Location() != time.UTC || rec.IngestedAt.Location() != time.UTC {
			t.Fatalf("DecodeRecord(%q) times not in UTC: %+v", value, rec)
		}
		// The aggregator reads the properties of every decoded record; a
		// failure must be an EvalError (dead-lettered), never a panic.
		if props, err := schemas.DecodeProperties(rec.Event.Properties); err == nil {
			evaluateAll(t, props)
		} else {
			var ee *schemas.EvalError
			if !errors.As(err, &ee) || ee.Reason != schemas.ReasonPropertiesJSON {
				t.Fatalf("DecodeProperties(%q): %v", rec.Event.Properties, err)
			}
		}
		// Re-encoding reaches a fixed point after one round (the first
		// round compacts the properties and moves times to UTC).
		_, value2, err := schemas.EncodeRecord(rec)
		if err != nil {
			if outsideJSONYears(rec.Event.Time) || outsideJSONYears(rec.IngestedAt) {
				return // a time zone offset moved the year out of 0-9999
			}
			t.Fatalf("EncodeRecord of decoded %+v: %v", rec, err)
		}
		rec2, err := schemas.DecodeRecord(value2)
		if err != nil {
			t.Fatalf("DecodeRecord of re-encoded %s: %v", value2, err)
		}
		_, value3, err := schemas.EncodeRecord(rec2)
		if err != nil || !bytes.Equal(value2, value3) {
			t.Fatalf("record encoding is not stable:\n%s\n%s (%v)", value2, value3, err)
		}
		if rec2.OrgID != rec.OrgID || !rec2.IngestedAt.Equal(rec.IngestedAt) || !sameEventJSON(rec2.Event, rec.Event) {
			t.Fatalf("record round trip:\n got %+v\nwant %+v", rec2, rec)
		}
	})
}

func outsideJSONYears(t time.Time) bool { return t.Year() < 0 || t.Year() > 9999 }

// sameEventJSON is sameEvent with properties compared as JSON values.
func sameEventJSON(a, b schemas.Event) bool {
	pa, pb := a, b
	pa.Properties, pb.Properties = nil, nil
	var ca, cb bytes.Buffer
	errA := json.Compact(&ca, a.Properties)
	errB := json.Compact(&cb, b.Properties)
	return sameEvent(pa, pb) && (errA == nil) == (errB == nil) && bytes.Equal(ca.Bytes(), cb.Bytes())
}

// checkPropertyLimits checks accepted properties against the limits of
// event_json.go with encoding/json's tokenizer: depth, number length and
// range, and no name twice in one object.
func checkPropertyLimits(t *testing.T, props []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(props))
	dec.UseNumber()
	type level struct {
		object bool
		names  map[string]bool
		key    bool // the next string token is a name
	}
	var stack []*level
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isName := top != nil && top.object && top.key
		if top != nil && top.object {
			top.key = !top.key
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				stack = append(stack, &level{object: v == '{', names: map[string]bool{}, key: true})
				if len(stack) > schemas.MaxPropertiesDepth {
					t.Fatalf("properties %q nest %d levels deep", props, len(stack))
				}
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].key = true
				}
			}
			continue
		case string:
			if isName {
				if top.names[v] {
					t.Fatalf("properties %q repeat the name %q", props, v)
				}
				top.names[v] = true
			}
		case json.Number:
			d, err := decimal.NewFromString(v.String())
			if len(v) > schemas.MaxNumberLen || err != nil || d.Abs().GreaterThanOrEqual(decimal.New(1, 26)) {
				t.Fatalf("properties %q hold the number %.120s (%v)", props, v, err)
			}
		}
	}
}

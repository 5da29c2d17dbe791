package schemas_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/tally-oss/tally/schemas"
)

func meterFor(t testing.TB, agg schemas.Aggregation, extra string) *schemas.Meter {
	t.Helper()
	value := `,"value_property":"$.v"`
	if agg == schemas.AggCount {
		value = ""
	}
	m := mustParseMeter(t, fmt.Sprintf(`{"key":"m","event_type":"e","aggregation":%q%s%s}`, agg, value, extra))
	return &m
}

func TestEvaluateAggregations(t *testing.T) {
	props := mustProps(t, `{"v": 12.50, "g": "x"}`)
	for _, agg := range schemas.Aggregations {
		m := meterFor(t, agg, `,"group_by":{"g":"$.g"}`)
		r, matched, err := m.Evaluate(props)
		if err != nil || !matched {
			t.Fatalf("%s: Evaluate = %v, %v", agg, matched, err)
		}
		wantValue, wantDistinct := "12.5", ""
		switch agg {
		case schemas.AggCount:
			wantValue = "1"
		case schemas.AggUniqueCount:
			wantValue, wantDistinct = "0", "12.5"
		}
		if r.Value.String() != wantValue || r.Distinct != wantDistinct || !slices.Equal(r.GroupValues, []string{"x"}) {
			t.Errorf("%s: reading = {value %s, distinct %q, groups %q}, want {%s, %q, [x]}",
				agg, r.Value, r.Distinct, r.GroupValues, wantValue, wantDistinct)
		}
	}
	// COUNT reads no value: it counts events whatever their properties.
	m := meterFor(t, schemas.AggCount, "")
	for _, raw := range []string{`{}`, `{"v": "not a number"}`, `{"v": {}}`} {
		r, matched, err := m.Evaluate(mustProps(t, raw))
		if err != nil || !matched || !r.Value.Equal(decimal.NewFromInt(1)) || len(r.GroupValues) != 0 {
			t.Errorf("COUNT of %s = %+v, %v, %v", raw, r, matched, err)
		}
	}
}

func TestEvaluateNumericValues(t *testing.T) {
	const (
		max26 = "99999999999999999999999999.999999999999" // the largest Decimal(38, 12)
	)
	for _, tc := range []struct {
		v      string // JSON
		want   string // decimal text, or the reason code of the error
		reason bool
	}{
		{`0`, "0", false},
		{`-0`, "0", false},
		{`7`, "7", false},
		{`-7`, "-7", false},
		{`0.1`, "0.1", false},
		{`12.50`, "12.5", false},
		{`1e3`, "1000", false},
		{`1E-12`, "0.000000000001", false},
		{`2.5e-3`, "0.0025", false},
		{`0.000000000001`, "0.000000000001", false},
		{`-0.000000000001`, "-0.000000000001", false},
		{`1.100000000000000000000`, "1.1", false}, // trailing zeros are not precision
		{max26, max26, false},
		{"-" + max26, "-" + max26, false},
		{`99999999999999999999999999`, "99999999999999999999999999", false},
		{`123456789012345678901234.123456789012`, "123456789012345678901234.123456789012", false},

		{`"42"`, "42", false},
		{`"0.1"`, "0.1", false},
		{`"-3.25"`, "-3.25", false},
		{`"1e2"`, "100", false},
		{`"+5"`, "5", false},

		{`100000000000000000000000000`, schemas.ReasonValueOutOfRange, true},
		{`-100000000000000000000000000`, schemas.ReasonValueOutOfRange, true},
		{`1e26`, schemas.ReasonValueOutOfRange, true},
		{`-1e26`, schemas.ReasonValueOutOfRange, true},
		{`1e30`, schemas.ReasonValueOutOfRange, true},
		{`123456789012345678901234567890`, schemas.ReasonValueOutOfRange, true},
		{`123456789012345678.901234567890`, "123456789012345678.90123456789", false}, // a trailing zero is not precision
		{`123456789012345678.9012345678901`, schemas.ReasonValueTooPrecise, true},
		{`99999999999999999999999999.9999999999999`, schemas.ReasonValueTooPrecise, true},
		{`"1e26"`, schemas.ReasonValueOutOfRange, true},
		{`0.0000000000001`, schemas.ReasonValueTooPrecise, true},
		{`1e-13`, schemas.ReasonValueTooPrecise, true},
		{`0.1234567890123`, schemas.ReasonValueTooPrecise, true},
		{`"0.1234567890123"`, schemas.ReasonValueTooPrecise, true},

		{`"abc"`, schemas.ReasonValueNotNumber, true},
		{`""`, schemas.ReasonValueNotNumber, true},
		{`" 5"`, schemas.ReasonValueNotNumber, true},
		{`"5 "`, schemas.ReasonValueNotNumber, true},
		{`"0x10"`, schemas.ReasonValueNotNumber, true},
		{`"NaN"`, schemas.ReasonValueNotNumber, true},
		{`"Infinity"`, schemas.ReasonValueNotNumber, true},
		{`"1,5"`, schemas.ReasonValueNotNumber, true},
		{`"1_000"`, schemas.ReasonValueNotNumber, true},
		{`true`, schemas.ReasonValueNotNumber, true},
		{`false`, schemas.ReasonValueNotNumber, true},
		{`{"n": 1}`, schemas.ReasonValueNotNumber, true},
		{`[1]`, schemas.ReasonValueNotNumber, true},
		{`null`, schemas.ReasonValueMissing, true},
	} {
		for _, agg := range []schemas.Aggregation{schemas.AggSum, schemas.AggMax, schemas.AggMin, schemas.AggAvg, schemas.AggLatest} {
			m := meterFor(t, agg, "")
			r, matched, err := m.Evaluate(mustProps(t, `{"v": `+tc.v+`}`))
			if !matched {
				t.Errorf("%s of %s: not matched", agg, tc.v)
				continue
			}
			if tc.reason {
				var ee *schemas.EvalError
				if !errors.As(err, &ee) || ee.Reason != tc.want {
					t.Errorf("%s of %s = %v, %v; want reason %s", agg, tc.v, r.Value, err, tc.want)
				} else if ee.Message == "" || !strings.HasPrefix(err.Error(), tc.want+": ") {
					t.Errorf("%s of %s: error text %q", agg, tc.v, err)
				}
				continue
			}
			want := decimal.RequireFromString(tc.want)
			if err != nil || !r.Value.Equal(want) || r.Value.String() != tc.want {
				t.Errorf("%s of %s = %v, %v; want exactly %s", agg, tc.v, r.Value, err, tc.want)
			}
		}
	}
	// A missing value is reported as missing, for every aggregation that
	// reads one.
	for _, agg := range schemas.Aggregations {
		if agg == schemas.AggCount {
			continue
		}
		for _, raw := range []string{`{}`, `{"v": null}`, `{"w": 1}`} {
			_, matched, err := meterFor(t, agg, "").Evaluate(mustProps(t, raw))
			var ee *schemas.EvalError
			if !matched || !errors.As(err, &ee) || ee.Reason != schemas.ReasonValueMissing {
				t.Errorf("%s of %s: %v, %v; want %s", agg, raw, matched, err, schemas.ReasonValueMissing)
			}
		}
	}
}

// TestEvaluateHugeExponents checks that numbers whose exponent the decimal
// library refuses are dead-lettered (never rounded, never a hang).
func TestEvaluateHugeExponents(t *testing.T) {
	m := meterFor(t, schemas.AggSum, `,"group_by":{"g":"$.g"}`)
	for _, v := range []string{`1e10001`, `1e-10001`, `1e99999999999`, `"1e-99999999999"`} {
		_, _, err := m.Evaluate(mustProps(t, `{"v": `+v+`}`))
		var ee *schemas.EvalError
		if !errors.As(err, &ee) {
			t.Errorf("SUM of %s: %v, want an EvalError", v, err)
		}
	}
	// As a group value it stays as written.
	r, _, err := m.Evaluate(mustProps(t, `{"v": 1, "g": 1e99999999999}`))
	if err != nil || r.GroupValues[0] != "1e99999999999" {
		t.Errorf("group value = %q, %v", r.GroupValues, err)
	}
}

func TestEvaluateUniqueCount(t *testing.T) {
	m := meterFor(t, schemas.AggUniqueCount, "")
	for _, tc := range []struct {
		v, want, reason string
	}{
		{`"alice"`, "alice", ""},
		{`""`, "", ""},
		{`"1.50"`, "1.50", ""}, // strings are kept as written
		{`1.50`, "1.5", ""},    // numbers are canonical
		{`1.5`, "1.5", ""},
		{`1.500000000000000000000001`, "1.500000000000000000000001", ""},
		{`1e3`, "1000", ""},
		{`-0`, "0", ""},
		{`0.0`, "0", ""},
		{`123456789012345678901234567890`, "123456789012345678901234567890", ""}, // no range limit on text
		{`true`, "true", ""},
		{`false`, "false", ""},
		{`{"id": 1}`, "", schemas.ReasonValueNotScalar},
		{`[]`, "", schemas.ReasonValueNotScalar},
		{`null`, "", schemas.ReasonValueMissing},
	} {
		r, matched, err := m.Evaluate(mustProps(t, `{"v": `+tc.v+`}`))
		if tc.reason != "" {
			var ee *schemas.EvalError
			if !matched || !errors.As(err, &ee) || ee.Reason != tc.reason {
				t.Errorf("UNIQUE_COUNT of %s = %+v, %v; want reason %s", tc.v, r, err, tc.reason)
			}
			continue
		}
		if err != nil || !matched || r.Distinct != tc.want || !r.Value.IsZero() {
			t.Errorf("UNIQUE_COUNT of %s = distinct %q value %v, %v; want %q", tc.v, r.Distinct, r.Value, err, tc.want)
		}
	}
}

func TestEvaluateGroupValues(t *testing.T) {
	m := meterFor(t, schemas.AggCount, `,"group_by":{"b":"$.b","a":"$.nested.a","c":"c"}`)
	if !slices.Equal(m.GroupKeys(), []string{"a", "b", "c"}) {
		t.Fatalf("GroupKeys = %v", m.GroupKeys())
	}
	for _, tc := range []struct {
		props  string
		want   []string
		reason string
	}{
		{`{}`, []string{"", "", ""}, ""},
		{`{"b": "x", "nested": {"a": "y"}, "c": "z"}`, []string{"y", "x", "z"}, ""},
		{`{"b": null, "nested": null, "c": ""}`, []string{"", "", ""}, ""},
		{`{"b": 1.50, "nested": {"a": 100}, "c": 1e2}`, []string{"100", "1.5", "100"}, ""},
		{`{"b": -0.0, "nested": {"a": 0.10}, "c": "0.10"}`, []string{"0.1", "0", "0.10"}, ""},
		{`{"b": true, "nested": {"a": false}, "c": "true"}`, []string{"false", "true", "true"}, ""},
		{`{"b": "日本 😀", "nested": {"a": "a/b"}, "c": "<x>"}`, []string{"a/b", "日本 😀", "<x>"}, ""},
		{`{"nested": "not an object"}`, []string{"", "", ""}, ""},
		{`{"b": {"x": 1}}`, nil, schemas.ReasonGroupNotScalar},
		{`{"c": [1, 2]}`, nil, schemas.ReasonGroupNotScalar},
		{`{"nested": {"a": {}}}`, nil, schemas.ReasonGroupNotScalar},
		{`{"c": []}`, nil, schemas.ReasonGroupNotScalar},
	} {
		r, matched, err := m.Evaluate(mustProps(t, tc.props))
		if !matched {
			t.Errorf("%s: not matched", tc.props)
			continue
		}
		if tc.reason != "" {
			var ee *schemas.EvalError
			if !errors.As(err, &ee) || ee.Reason != tc.reason {
				t.Errorf("%s: %v, want reason %s", tc.props, err, tc.reason)
			}
			continue
		}
		if err != nil || !slices.Equal(r.GroupValues, tc.want) {
			t.Errorf("%s: group values %q, %v; want %q", tc.props, r.GroupValues, err, tc.want)
		}
	}
	// The group error comes first, even when the value is bad too: the
	// event is dead-lettered once, with one reason.
	_, _, err := meterFor(t, schemas.AggSum, `,"group_by":{"g":"$.g"}`).Evaluate(mustProps(t, `{"g": {}, "v": "x"}`))
	var ee *schemas.EvalError
	if !errors.As(err, &ee) || ee.Reason != schemas.ReasonGroupNotScalar {
		t.Errorf("group and value both bad: %v", err)
	}
	// No group_by: no group values.
	r, _, _ := meterFor(t, schemas.AggCount, "").Evaluate(map[string]any{})
	if len(r.GroupValues) != 0 {
		t.Errorf("group values without group_by: %q", r.GroupValues)
	}
}

func TestEvaluateFilter(t *testing.T) {
	m := meterFor(t, schemas.AggSum, `,"group_by":{"g":"$.g"},"filter":{"status":{"eq":"ok"}}`)
	for _, tc := range []struct {
		props   string
		matched bool
		err     bool
	}{
		{`{"status": "ok", "v": 2}`, true, false},
		{`{"status": "ok"}`, true, true},
		{`{"status": "ok", "v": 2, "g": {}}`, true, true},
		{`{"status": "error", "v": 2}`, false, false},
		{`{"status": "error"}`, false, false},                     // excluded before the value is read
		{`{"status": "error", "v": "x", "g": [1]}`, false, false}, // bad values of excluded events are no error
		{`{}`, false, false},
	} {
		r, matched, err := m.Evaluate(mustProps(t, tc.props))
		if matched != tc.matched || (err != nil) != tc.err {
			t.Errorf("%s: matched %v, err %v; want matched %v, error %v", tc.props, matched, err, tc.matched, tc.err)
		}
		if !matched && (!r.Value.IsZero() || r.Distinct != "" || r.GroupValues != nil) {
			t.Errorf("%s: excluded event has reading %+v", tc.props, r)
		}
	}
}

func TestDecodeProperties(t *testing.T) {
	for _, raw := range []string{``, `null`, ` null `} {
		props, err := schemas.DecodeProperties(json.RawMessage(raw))
		if err != nil || len(props) != 0 {
			t.Errorf("DecodeProperties(%q) = %v, %v; want no properties", raw, props, err)
		}
	}
	props, err := schemas.DecodeProperties(nil)
	if err != nil || props == nil {
		t.Errorf("DecodeProperties(nil) = %v, %v", props, err)
	}
	for _, raw := range []string{`{`, `[1]`, `"x"`, `1`, `true`, `{"a":01}`, `{"a":}`} {
		_, err := schemas.DecodeProperties(json.RawMessage(raw))
		var ee *schemas.EvalError
		if !errors.As(err, &ee) || ee.Reason != schemas.ReasonPropertiesJSON {
			t.Errorf("DecodeProperties(%s) = %v, want reason %s", raw, err, schemas.ReasonPropertiesJSON)
		}
	}
	// No float64 anywhere: every number, however nested, is a json.Number
	// holding the text as sent.
	props = mustProps(t, `{"a": 0.1, "b": [1, 2.50, {"c": 1e400}], "d": {"e": {"f": 123456789012345678901234567890.123456789012}}}`)
	var numbers []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case float64:
			t.Errorf("float64 %v in decoded properties", x)
		case json.Number:
			numbers = append(numbers, x.String())
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(x)) {
				walk(x[k])
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(props)
	want := []string{"0.1", "1", "2.50", "1e400", "123456789012345678901234567890.123456789012"}
	if !slices.Equal(numbers, want) {
		t.Errorf("numbers = %q, want %q", numbers, want)
	}
}

// TestEvaluateNoFloat checks that a properties map decoded without
// UseNumber (numbers as float64) is refused rather than metered
// approximately.
func TestEvaluateNoFloat(t *testing.T) {
	var floats map[string]any
	if err := json.Unmarshal([]byte(`{"v": 0.1, "g": 2}`), &floats); err != nil {
		t.Fatal(err)
	}
	_, _, err := meterFor(t, schemas.AggSum, "").Evaluate(floats)
	var ee *schemas.EvalError
	if !errors.As(err, &ee) || ee.Reason != schemas.ReasonValueNotNumber {
		t.Errorf("SUM of a float64: %v, want %s", err, schemas.ReasonValueNotNumber)
	}
	_, _, err = meterFor(t, schemas.AggCount, `,"group_by":{"g":"$.g"}`).Evaluate(floats)
	if !errors.As(err, &ee) || ee.Reason != schemas.ReasonGroupNotScalar {
		t.Errorf("group by a float64: %v, want %s", err, schemas.ReasonGroupNotScalar)
	}
}

// TestEvaluateSumIsExact is invariant 6 at the level of one event's
// reading: many events of 0.1 sum to exactly their count / 10.
func TestEvaluateSumIsExact(t *testing.T) {
	m := meterFor(t, schemas.AggSum, "")
	const n = 100_000
	props := mustProps(t, `{"v": 0.1}`)
	sum := decimal.Zero
	for range n {
		r, _, err := m.Evaluate(props)
		if err != nil {
			t.Fatal(err)
		}
		sum = sum.Add(r.Value)
	}
	if !sum.Equal(decimal.NewFromInt(n / 10)) {
		t.Errorf("%d × 0.1 = %s, want %d", n, sum, n/10)
	}
	// The largest value keeps every digit.
	r, _, err := m.Evaluate(mustProps(t, `{"v": "99999999999999999999999999.999999999999"}`))
	if err != nil || r.Value.Add(decimal.New(1, -12)).String() != "100000000000000000000000000" {
		t.Errorf("largest value = %v, %v", r.Value, err)
	}
}

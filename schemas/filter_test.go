package schemas_test

import (
	"encoding/json"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/tally-oss/tally/schemas"
)

func mustFilter(t testing.TB, raw string) *schemas.Filter {
	t.Helper()
	var f schemas.Filter
	if err := json.Unmarshal([]byte(raw), &f); err != nil {
		t.Fatalf("filter %s: %v", raw, err)
	}
	return &f
}

// TestFilterMatch runs every operator against every kind of property value.
// The semantics are those documented on Filter.Match.
func TestFilterMatch(t *testing.T) {
	const props = `{
		"s": "ok", "empty": "", "num_text": "10", "dec_text": "0.30", "bad_text": "ten", "spaced": " 10",
		"one": 1, "one_point_zero": 1.0, "ten": 10, "neg": -2.5, "zero": 0, "neg_zero": -0,
		"float_sum": 0.30000000000000004, "point_three": 0.3,
		"big": 12345678901234567890123, "exp": 1e2,
		"t": true, "f": false, "null": null,
		"obj": {"a": 1}, "list": [1, "ok"],
		"usage": {"tokens": 1500, "model": {"name": "gpt"}},
		"and": "literal"
	}`
	p := mustProps(t, props)
	for _, tc := range []struct {
		filter string
		want   bool
	}{
		// eq: present and equal, same JSON type, numbers by exact value.
		{`{"s": {"eq": "ok"}}`, true},
		{`{"s": {"eq": "OK"}}`, false},
		{`{"s": {"eq": "ok "}}`, false},
		{`{"empty": {"eq": ""}}`, true},
		{`{"missing": {"eq": ""}}`, false},
		{`{"null": {"eq": ""}}`, false},
		{`{"num_text": {"eq": 10}}`, false},
		{`{"ten": {"eq": "10"}}`, false},
		{`{"one": {"eq": 1}}`, true},
		{`{"one": {"eq": 1.0}}`, true},
		{`{"one_point_zero": {"eq": 1}}`, true},
		{`{"one": {"eq": 1.000000000000000000000000001}}`, false},
		{`{"one": {"eq": 1e0}}`, true},
		{`{"exp": {"eq": 100}}`, true},
		{`{"zero": {"eq": -0}}`, true},
		{`{"neg_zero": {"eq": 0}}`, true},
		{`{"point_three": {"eq": 0.30}}`, true},
		{`{"float_sum": {"eq": 0.3}}`, false},
		{`{"big": {"eq": 12345678901234567890123}}`, true},
		{`{"big": {"eq": 12345678901234567890124}}`, false}, // equal as float64
		{`{"t": {"eq": true}}`, true},
		{`{"t": {"eq": false}}`, false},
		{`{"f": {"eq": false}}`, true},
		{`{"t": {"eq": "true"}}`, false},
		{`{"t": {"eq": 1}}`, false},
		{`{"zero": {"eq": false}}`, false},
		{`{"obj": {"eq": "ok"}}`, false},
		{`{"list": {"eq": 1}}`, false},
		{`{"usage.model.name": {"eq": "gpt"}}`, true},
		{`{"$.usage.model.name": {"eq": "gpt"}}`, true},
		{`{"$.usage.model": {"eq": "gpt"}}`, false},
		{`{"$.usage.model.name.x": {"eq": "gpt"}}`, false},
		{`{"$.and": {"eq": "literal"}}`, true},

		// ne: absent, or not equal.
		{`{"s": {"ne": "ok"}}`, false},
		{`{"s": {"ne": "error"}}`, true},
		{`{"missing": {"ne": "ok"}}`, true},
		{`{"null": {"ne": "ok"}}`, true},
		{`{"one": {"ne": 1.0}}`, false},
		{`{"one": {"ne": "1"}}`, true},
		{`{"big": {"ne": 12345678901234567890124}}`, true},
		{`{"t": {"ne": true}}`, false},
		{`{"t": {"ne": false}}`, true},
		{`{"obj": {"ne": "ok"}}`, true},
		{`{"usage.model.name": {"ne": "gpt"}}`, false},
		{`{"usage.model.missing": {"ne": "gpt"}}`, true},
		{`{"missing": {"ne": "ok", "exists": true}}`, false},
		{`{"s": {"eq": "ok", "ne": "ok"}}`, false},

		// in: present and equal to one operand.
		{`{"s": {"in": ["error", "ok"]}}`, true},
		{`{"s": {"in": ["error"]}}`, false},
		{`{"s": {"in": [1, true, "ok"]}}`, true},
		{`{"one": {"in": [2, 1.00]}}`, true},
		{`{"one": {"in": ["1", true]}}`, false},
		{`{"t": {"in": [true]}}`, true},
		{`{"f": {"in": [true, 0]}}`, false},
		{`{"missing": {"in": ["ok", ""]}}`, false},
		{`{"null": {"in": ["ok"]}}`, false},
		{`{"list": {"in": [1, "ok"]}}`, false},
		{`{"point_three": {"in": [0.1, 0.3]}}`, true},
		{`{"float_sum": {"in": [0.3]}}`, false},

		// gt, gte, lt, lte: present and a number, or a string holding one.
		{`{"ten": {"gt": 9}}`, true},
		{`{"ten": {"gt": 10}}`, false},
		{`{"ten": {"gte": 10}}`, true},
		{`{"ten": {"gte": 10.000000000000000001}}`, false},
		{`{"ten": {"lt": 10}}`, false},
		{`{"ten": {"lt": 10.000000000000000001}}`, true},
		{`{"ten": {"lte": 10}}`, true},
		{`{"ten": {"lte": 9.99999999999999999999}}`, false},
		{`{"neg": {"lt": -2.4999}}`, true},
		{`{"neg": {"gt": -2.5}}`, false},
		{`{"neg": {"gte": -2.50}}`, true},
		{`{"float_sum": {"gt": 0.3}}`, true},
		{`{"float_sum": {"lte": 0.3}}`, false},
		{`{"point_three": {"lte": 0.3, "gte": 0.3}}`, true},
		{`{"point_three": {"gt": 0.29999999999999999999, "lt": 0.30000000000000000001}}`, true},
		{`{"big": {"gt": 12345678901234567890122}}`, true},
		{`{"big": {"gt": 12345678901234567890123}}`, false},
		{`{"exp": {"gte": 1e2, "lte": 100.0}}`, true},
		{`{"ten": {"gt": 1, "lt": 100}}`, true},
		{`{"ten": {"gt": 1, "lt": 5}}`, false},
		{`{"num_text": {"gt": 9}}`, true},
		{`{"num_text": {"lt": 9}}`, false},
		{`{"num_text": {"gte": 10, "lte": 10}}`, true},
		{`{"dec_text": {"gte": 0.3, "lte": 0.3}}`, true},
		{`{"bad_text": {"gt": 0}}`, false},
		{`{"bad_text": {"lt": 0}}`, false},
		{`{"spaced": {"gt": 0}}`, false},
		{`{"empty": {"gte": 0}}`, false},
		{`{"t": {"gt": 0}}`, false},
		{`{"f": {"lt": 1}}`, false},
		{`{"missing": {"lt": 1}}`, false},
		{`{"null": {"lt": 1}}`, false},
		{`{"obj": {"gt": 0}}`, false},
		{`{"list": {"gt": 0}}`, false},
		{`{"usage.tokens": {"gt": 1000}}`, true},
		{`{"usage.tokens": {"gt": 1000, "exists": true, "ne": 1500}}`, false},

		// exists: presence is as given; null is absent.
		{`{"s": {"exists": true}}`, true},
		{`{"s": {"exists": false}}`, false},
		{`{"missing": {"exists": true}}`, false},
		{`{"missing": {"exists": false}}`, true},
		{`{"null": {"exists": true}}`, false},
		{`{"null": {"exists": false}}`, true},
		{`{"empty": {"exists": true}}`, true},
		{`{"f": {"exists": true}}`, true},
		{`{"zero": {"exists": true}}`, true},
		{`{"obj": {"exists": true}}`, true},
		{`{"usage.model.name": {"exists": true}}`, true},
		{`{"usage.model.name.deeper": {"exists": false}}`, true},
		{`{"missing": {"exists": false, "ne": "x"}}`, true},

		// Several properties in one object must all hold.
		{`{"s": {"eq": "ok"}, "ten": {"gt": 5}}`, true},
		{`{"s": {"eq": "ok"}, "ten": {"gt": 50}}`, false},

		// and, or, not.
		{`{"and": [{"s": {"eq": "ok"}}, {"t": {"eq": true}}]}`, true},
		{`{"and": [{"s": {"eq": "ok"}}, {"t": {"eq": false}}]}`, false},
		{`{"or": [{"s": {"eq": "no"}}, {"t": {"eq": true}}]}`, true},
		{`{"or": [{"s": {"eq": "no"}}, {"t": {"eq": false}}]}`, false},
		{`{"or": [{"missing": {"exists": true}}]}`, false},
		{`{"not": {"s": {"eq": "ok"}}}`, false},
		{`{"not": {"s": {"eq": "no"}}}`, true},
		{`{"not": {"not": {"s": {"eq": "ok"}}}}`, true},
		{`{"not": {"missing": {"eq": "x"}}}`, true},
		{`{"s": {"eq": "ok"}, "or": [{"ten": {"lt": 5}}, {"one": {"eq": 1}}], "not": {"f": {"eq": true}}}`, true},
		{`{"s": {"eq": "ok"}, "or": [{"ten": {"lt": 5}}, {"one": {"eq": 2}}], "not": {"f": {"eq": true}}}`, false},
		{`{"s": {"eq": "ok"}, "or": [{"ten": {"lt": 5}}, {"one": {"eq": 1}}], "not": {"f": {"eq": false}}}`, false},
		{`{"and": [{"or": [{"s": {"eq": "x"}}, {"s": {"eq": "ok"}}]}, {"not": {"and": [{"t": {"eq": true}}, {"f": {"eq": true}}]}}]}`, true},
		{`{"or": [{"and": [{"usage.tokens": {"gte": 1500}}, {"usage.model.name": {"in": ["gpt"]}}]}, {"s": {"eq": "x"}}]}`, true},
	} {
		f := mustFilter(t, tc.filter)
		if got := f.Match(p); got != tc.want {
			t.Errorf("%s matched = %v, want %v", tc.filter, got, tc.want)
		}
	}
}

func TestFilterMatchEdges(t *testing.T) {
	var nilFilter *schemas.Filter
	if !nilFilter.Match(nil) || !nilFilter.Match(mustProps(t, `{"a":1}`)) {
		t.Error("a nil filter must match everything")
	}
	f := mustFilter(t, `{"a": {"ne": 1}, "b": {"exists": false}}`)
	if !f.Match(nil) || !f.Match(map[string]any{}) {
		t.Error("ne and exists:false must match events without properties")
	}
	if mustFilter(t, `{"a": {"eq": 1}}`).Match(nil) {
		t.Error("eq matched an event without properties")
	}
	// Properties decoded without UseNumber hold float64, which filters never
	// treat as a number: no value passes through float64 unnoticed.
	var floats map[string]any
	if err := json.Unmarshal([]byte(`{"a": 1}`), &floats); err != nil {
		t.Fatal(err)
	}
	if mustFilter(t, `{"a": {"eq": 1}}`).Match(floats) || mustFilter(t, `{"a": {"gt": 0}}`).Match(floats) {
		t.Error("a float64 property value was compared as a number")
	}
}

// TestFilterBuiltInGo checks a filter built as a Go value rather than parsed:
// its property paths are read from Property.
func TestFilterBuiltInGo(t *testing.T) {
	ok, one := "ok", decimal.NewFromInt(1)
	yes := true
	f := &schemas.Filter{
		Properties: []schemas.PropertyFilter{
			{Property: "status", Eq: &schemas.Scalar{String: &ok}},
			{Property: "$.usage.tokens", Gt: &one},
		},
		Or: []schemas.Filter{{Properties: []schemas.PropertyFilter{{Property: "tier", Exists: &yes}}}},
	}
	for props, want := range map[string]bool{
		`{"status":"ok","usage":{"tokens":2},"tier":"pro"}`:   true,
		`{"status":"ok","usage":{"tokens":2}}`:                false,
		`{"status":"bad","usage":{"tokens":2},"tier":"pro"}`:  false,
		`{"status":"ok","usage":{"tokens":1},"tier":"pro"}`:   false,
		`{"status":"ok","usage":{"tokens":"3"},"tier":"pro"}`: true,
	} {
		if got := f.Match(mustProps(t, props)); got != want {
			t.Errorf("Match(%s) = %v, want %v", props, got, want)
		}
	}
	// A property that is not a path names nothing: it is absent.
	bad := &schemas.Filter{Properties: []schemas.PropertyFilter{{Property: "a b", Exists: &yes}}}
	if bad.Match(mustProps(t, `{"a b": 1}`)) {
		t.Error("an invalid property path matched")
	}
	// Marshalled, it is a filter ParseMeter reads.
	raw, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustFilter(t, string(raw)); !got.Match(mustProps(t, `{"status":"ok","usage":{"tokens":2},"tier":"pro"}`)) {
		t.Errorf("re-parsed filter %s does not match", raw)
	}
}

func TestFilterMarshal(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"status":{"eq":"ok"}}`, `{"status":{"eq":"ok"}}`},
		{`{"$.n":{"gte":1.50,"lt":1e3,"in":[1.0,"a",false]}}`, `{"$.n":{"gte":1.5,"in":[1,"a",false],"lt":1000}}`},
		{`{"not":{"a":{"exists":false}},"or":[{"b":{"ne":-0.0}}],"and":[{"c":{"lte":-1}}]}`,
			`{"and":[{"c":{"lte":-1}}],"not":{"a":{"exists":false}},"or":[{"b":{"ne":0}}]}`},
		{`{"x":{"eq":"<&>"}}`, `{"x":{"eq":"\u003c\u0026\u003e"}}`},
	} {
		raw, err := json.Marshal(mustFilter(t, tc.in))
		if err != nil {
			t.Fatal(err)
		}
		if string(raw) != tc.want {
			t.Errorf("Marshal(%s) = %s, want %s", tc.in, raw, tc.want)
		}
	}
	// The zero Scalar has no value.
	if raw, _ := json.Marshal(schemas.Scalar{}); string(raw) != "null" {
		t.Errorf("zero Scalar marshals to %s", raw)
	}
}

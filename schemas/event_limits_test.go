package schemas_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tally-oss/tally/schemas"
)

// nested returns a properties object nested levels deep, the innermost
// holding inner: nested(1, "1") is {"l1":1}.
func nested(levels int, inner string) string {
	var b strings.Builder
	for i := 1; i <= levels; i++ {
		b.WriteString(`{"l` + string(rune('a'+i%26)) + `":`)
	}
	b.WriteString(inner)
	b.WriteString(strings.Repeat("}", levels))
	return b.String()
}

// TestParseEventLimits checks the limits of issue 6 defects 1 and 11: a
// number's length and range, the nesting depth of properties, and member
// names that differ only by case or appear twice. Each rejection is a
// *FieldError naming the field (a property by its path).
func TestParseEventLimits(t *testing.T) {
	million := strings.Repeat("7", 1_000_000)
	deepPath := "properties"
	for i := 1; i <= schemas.MaxPropertiesDepth; i++ {
		deepPath += ".l" + string(rune('a'+i%26))
	}
	rejected := []struct {
		name  string
		raw   []byte
		field string
		want  string // in the message
	}{
		{"a million digits", event(map[string]string{"properties": `{"n":` + million + `}`}), "properties.n", "characters long"},
		{"a long number deep in an array", event(map[string]string{"properties": `{"a":{"b":[1,2,0.` + strings.Repeat("0", schemas.MaxNumberLen) + `1]}}`}), "properties.a.b[2]", "characters long"},
		{"data's numbers too", event(map[string]string{"data": `{"n":` + million + `}`}), "data.n", "characters long"},
		{"10^26", event(map[string]string{"properties": `{"v":1e26}`}), "properties.v", "out of range"},
		{"-10^26 written out", event(map[string]string{"properties": `{"v":-100000000000000000000000000}`}), "properties.v", "out of range"},
		{"10^26 as 0.1e27", event(map[string]string{"properties": `{"v":0.1e27}`}), "properties.v", "out of range"},
		{"huge exponent", event(map[string]string{"properties": `{"v":1e1000000000}`}), "properties.v", "exponent"},
		{"huge exponent of zero", event(map[string]string{"properties": `{"v":0e1000000000}`}), "properties.v", "exponent"},
		{"tiny exponent", event(map[string]string{"properties": `{"v":1e-1001}`}), "properties.v", "exponent"},
		{"nested too deep", event(map[string]string{"properties": nested(schemas.MaxPropertiesDepth, "{}")}), deepPath, "nested deeper than 32"},
		{"nested too deep in arrays", event(map[string]string{"properties": `{"a":` + strings.Repeat("[", schemas.MaxPropertiesDepth) + strings.Repeat("]", schemas.MaxPropertiesDepth) + `}`}), "properties.a" + strings.Repeat("[0]", schemas.MaxPropertiesDepth-1), "nested deeper than 32"},
		{"duplicate property", event(map[string]string{"properties": `{"a":{"x":1,"y":2,"x":3}}`}), "properties.a.x", "more than once"},
		{"duplicate property, escaped", event(map[string]string{"properties": `{"ab":1,"a\u0062":2}`}), `properties.a\u0062`, "more than once"},
		{"id and ID", []byte(`{"id":"e1","ID":"e2","type":"t","customer_id":"c"}`), "ID", "case"},
		{"ID alone", []byte(`{"ID":"e1","type":"t","customer_id":"c"}`), "ID", "case"},
		{"Properties", []byte(`{"id":"e1","type":"t","customer_id":"c","Properties":{}}`), "Properties", "case"},
		{"long s", []byte("{\"id\":\"e1\",\"type\":\"t\",\"customer_id\":\"c\",\"\u017fource\":\"x\"}"), "\u017fource", "case"},
		{"id twice", []byte(`{"id":"e1","type":"t","customer_id":"c","id":"e2"}`), "id", "more than once"},
		{"id twice, escaped", []byte(`{"id":"e1","type":"t","customer_id":"c","\u0069d":"e2"}`), "id", "more than once"},
		{"properties twice", []byte(`{"id":"e1","type":"t","customer_id":"c","properties":{},"properties":{"a":1}}`), "properties", "more than once"},
	}
	rules := schemas.EventRules{Now: testNow}
	for _, tc := range rejected {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := schemas.ParseEvent(tc.raw, rules)
			var fe *schemas.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseEvent accepted it (id %q, %d bytes of properties), err %v; want a *FieldError naming %.80q", ev.ID, len(ev.Properties), err, tc.field)
			}
			if fe.Field != tc.field || !strings.Contains(fe.Message, tc.want) {
				t.Errorf("error names %q: %q; want %q with %q", fe.Field, fe.Message, tc.field, tc.want)
			}
			if len(fe.Message) > 300 || len(fe.Field) > 3000 {
				t.Errorf("error is %d+%d bytes; it must not quote the input whole", len(fe.Field), len(fe.Message))
			}
		})
	}

	accepted := []struct {
		name, properties string
	}{
		{"the largest reading", `{"v":99999999999999999999999999.999999999999}`},
		{"the smallest reading", `{"v":-99999999999999999999999999.999999999999}`},
		{"1e25 and 9.99e25", `{"a":1e25,"b":9.99e25,"c":0.00001e30}`},
		{"tiny and precise numbers", `{"a":1e-1000,"b":0.30000000000000004,"c":5e-324,"d":0e-1000}`},
		{"a number of the longest length", `{"a":0.` + strings.Repeat("1", schemas.MaxNumberLen-2) + `}`},
		{"nested as deep as allowed", nested(schemas.MaxPropertiesDepth-1, `[1]`)},
		{"keys that differ by case", `{"a":1,"A":2,"id":3,"ID":4}`},
		{"equal keys in different objects", `{"a":{"a":1},"b":{"a":2},"c":[{"a":1},{"a":2}]}`},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := schemas.ParseEvent(event(map[string]string{"properties": tc.properties}), rules); err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
		})
	}
}

// TestParseEventWideObject checks duplicate detection in an object too
// wide for the linear search.
func TestParseEventWideObject(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range 200 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(quoted("k" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26))))
		b.WriteString(":1")
	}
	props := b.String()
	rules := schemas.EventRules{Now: testNow}
	if _, err := schemas.ParseEvent(event(map[string]string{"properties": props + "}"}), rules); err != nil {
		t.Fatalf("ParseEvent: %v", err)
	}
	_, err := schemas.ParseEvent(event(map[string]string{"properties": props + `,"kxxxxza":2}`}), rules)
	var fe *schemas.FieldError
	if !errors.As(err, &fe) || fe.Field != "properties.kxxxxza" {
		t.Fatalf("ParseEvent: %v; want the repeated key named", err)
	}
}

// TestLongNumericStringIsNotANumber: a string property is not bounded at
// ingest, but a meter reads a numeric string as a number; one of a million
// digits must not cost the aggregator a second of CPU per meter, so it is
// not a number to Evaluate.
func TestLongNumericStringIsNotANumber(t *testing.T) {
	m, err := schemas.ParseMeter([]byte(`{"key":"s","event_type":"e","aggregation":"SUM","value_property":"$.v"}`))
	if err != nil {
		t.Fatal(err)
	}
	props := map[string]any{"v": strings.Repeat("7", 1_000_000)}
	_, _, err = m.Evaluate(props)
	var ee *schemas.EvalError
	if !errors.As(err, &ee) || ee.Reason != schemas.ReasonValueNotNumber || len(ee.Message) > 300 {
		t.Fatalf("Evaluate: %.300v; want %s", err, schemas.ReasonValueNotNumber)
	}
	props["v"] = "0." + strings.Repeat("1", schemas.MaxNumberLen-2)
	if _, _, err = m.Evaluate(props); !errors.As(err, &ee) || ee.Reason != schemas.ReasonValueTooPrecise {
		t.Fatalf("Evaluate of a numeric string of %d characters: %v", schemas.MaxNumberLen, err)
	}
}

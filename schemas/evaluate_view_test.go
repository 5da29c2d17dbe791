package schemas_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tally-oss/tally/schemas"
)

// Run the differential fuzzer for a few minutes after changing the view:
//
//	go test -run '^$' -fuzz FuzzPropertyViewDifferential -fuzztime 5m ./schemas/

// FuzzPropertyViewDifferential checks that PropertyPlan.Scan and
// EvaluateView give, for random meters and random properties (the fuzzer's
// bytes as they are, and a JSON document generated from its seed), exactly
// what DecodeProperties and Evaluate give: the same error, match, value
// (same decimal text), distinct value, group values and EvalError
// (reason and message), including for a meter the plan was not built for.
func FuzzPropertyViewDifferential(f *testing.F) {
	for _, seed := range []string{
		`{"tokens":12.5,"model":"gpt-5","route":"/v1/chat","region":"eu-west-1"}`,
		`{"a":{"b":1},"a":{"c":2},"b":"x"}`,
		`{"a":1,"a":null}`,
		`{"\u0061":{"b":"\u00e9"},"b":[1,{"a":2}],"c":true}`,
		"{\"a\":\"\xff\",\"b\":\"\\ud800\"}",
		`{"a":1e400,"b":-0.0000000000001,"c":"12.50","d":1E+2}`,
		`{"a":01}`, `{"a":1.}`, `{"a":1}x`, `{"a":1} `, `[1]`, `null`, ` null`, ``, `{"a":{"b":{"c":{}}}}`,
		`{"a":"x" , "b" : [ ] , "c" : { } }`, `{"a":tru}`, `{"a":"\x01"}`, `{"a":"\q"}`,
	} {
		f.Add([]byte(seed), uint64(len(seed)), uint64(1))
	}
	f.Fuzz(func(t *testing.T, raw []byte, seed1, seed2 uint64) {
		rng := rand.New(rand.NewPCG(seed1, seed2))
		meters := randomMeters(t, rng)
		checkView(t, raw, meters, rng)
		checkView(t, randomProperties(rng, 0), meters, rng)
	})
}

func checkView(t *testing.T, raw []byte, meters []*schemas.Meter, rng *rand.Rand) {
	t.Helper()
	// The plan may leave out some meters: they must still evaluate alike.
	plan := schemas.NewPropertyPlan(meters[:rng.IntN(len(meters)+1)])
	view, viewErr := plan.Scan(raw)
	// Every JSON object shallower than its depth bound takes the fast path
	// (so that this test compares something).
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if viewErr == nil && json.Valid(raw) && bytes.HasPrefix(trimmed, []byte("{")) &&
		bytes.Count(raw, []byte("{"))+bytes.Count(raw, []byte("[")) < 60 && schemas.ViewDecoded(view) {
		t.Fatalf("properties %q: Scan fell back to DecodeProperties", raw)
	}
	props, err := schemas.DecodeProperties(raw)
	if fmt.Sprint(err) != fmt.Sprint(viewErr) {
		t.Fatalf("properties %q: DecodeProperties error %v, Scan error %v", raw, err, viewErr)
	}
	if err != nil {
		return
	}
	for _, m := range meters {
		want, wantMatched, wantErr := m.Evaluate(props)
		got, gotMatched, gotErr := m.EvaluateView(view)
		def, _ := json.Marshal(m)
		if wantMatched != gotMatched || fmt.Sprint(wantErr) != fmt.Sprint(gotErr) ||
			want.Value.String() != got.Value.String() || want.Value.Exponent() != got.Value.Exponent() ||
			want.Distinct != got.Distinct || !slices.Equal(want.GroupValues, got.GroupValues) {
			t.Fatalf("meter %s on %q:\nEvaluate     %v %v %v %q %q\nEvaluateView %v %v %v %q %q", def, raw,
				wantMatched, wantErr, want.Value, want.Distinct, want.GroupValues,
				gotMatched, gotErr, got.Value, got.Distinct, got.GroupValues)
		}
	}
}

// viewSegments are the property names both the meters and the generated
// properties use, so that paths often hit.
var viewSegments = []string{"a", "b", "c", "tokens", "and"}

func randomPath(rng *rand.Rand) string {
	segs := make([]string, 1+rng.IntN(3))
	for i := range segs {
		segs[i] = viewSegments[rng.IntN(len(viewSegments))]
	}
	if len(segs) == 1 && segs[0] != "and" && rng.IntN(2) == 0 {
		return segs[0]
	}
	return "$." + strings.Join(segs, ".")
}

var viewOperands = []string{`"x"`, `"1"`, `"12.50"`, `1`, `1.0`, `-0.5`, `12.5`, `0`, `true`, `false`, `"é"`, `1e3`}

func randomFilter(rng *rand.Rand, depth int) string {
	var parts []string
	for range 1 + rng.IntN(2) {
		switch k := rng.IntN(8); {
		case k == 0 && depth < 2:
			parts = append(parts, fmt.Sprintf(`"and":[%s]`, randomFilter(rng, depth+1)))
		case k == 1 && depth < 2:
			parts = append(parts, fmt.Sprintf(`"or":[%s,%s]`, randomFilter(rng, depth+1), randomFilter(rng, depth+1)))
		case k == 2 && depth < 2:
			parts = append(parts, fmt.Sprintf(`"not":%s`, randomFilter(rng, depth+1)))
		default:
			var op string
			switch rng.IntN(6) {
			case 0:
				op = fmt.Sprintf(`"eq":%s`, viewOperands[rng.IntN(len(viewOperands))])
			case 1:
				op = fmt.Sprintf(`"ne":%s`, viewOperands[rng.IntN(len(viewOperands))])
			case 2:
				op = fmt.Sprintf(`"in":[%s,%s]`, viewOperands[rng.IntN(len(viewOperands))], viewOperands[rng.IntN(len(viewOperands))])
			case 3:
				op = fmt.Sprintf(`"%s":%s`, []string{"gt", "gte", "lt", "lte"}[rng.IntN(4)], []string{"0", "1", "12.5", "-1"}[rng.IntN(4)])
			case 4:
				op = fmt.Sprintf(`"exists":%v`, rng.IntN(2) == 0)
			default:
				op = `"gt":0,"lte":100`
			}
			parts = append(parts, fmt.Sprintf(`%q:{%s}`, randomPath(rng), op))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func randomMeters(t *testing.T, rng *rand.Rand) []*schemas.Meter {
	t.Helper()
	var meters []*schemas.Meter
	for i := range 1 + rng.IntN(4) {
		agg := schemas.Aggregations[rng.IntN(len(schemas.Aggregations))]
		def := map[string]any{"key": fmt.Sprintf("m%d", i), "event_type": "t", "aggregation": agg}
		if agg.NeedsValue() {
			def["value_property"] = randomPath(rng)
		}
		if n := rng.IntN(3); n > 0 {
			group := map[string]string{}
			for j := range n {
				group[fmt.Sprintf("g%d", j)] = randomPath(rng)
			}
			def["group_by"] = group
		}
		if rng.IntN(3) > 0 {
			def["filter"] = json.RawMessage(randomFilter(rng, 0))
		}
		raw, _ := json.Marshal(def)
		m, err := schemas.ParseMeter(raw)
		if err != nil {
			t.Fatalf("random meter %s: %v", raw, err)
		}
		meters = append(meters, &m)
	}
	return meters
}

var viewKeys = []string{`"a"`, `"b"`, `"c"`, `"tokens"`, `"and"`, `"\u0061"`, `"t\u006fkens"`, `"A"`, `"é"`, "\"\xff\"", `"z"`}

var viewScalars = []string{`"x"`, `"1"`, `"12.50"`, `1`, `1.0`, `-0.5`, `12.5`, `0`, `-0`, `1e3`, `1E+2`, `2.5e-1`,
	`100000000000000000000000000`, `0.0000000000001`, `1e400`, `true`, `false`, `null`, `"\u00e9"`, `"a\"b"`,
	`"\ud800"`, "\"\xff\xfe\"", `"\/"`, `""`, `"` + strings.Repeat("9", 300) + `"`, strings.Repeat("7", 300)}

// randomProperties is a valid JSON object (or, rarely, something
// encoding/json refuses or reads differently) with duplicate and escaped
// keys, nested objects and arrays, and numbers and strings of every form.
func randomProperties(rng *rand.Rand, depth int) []byte {
	var b strings.Builder
	b.WriteString("{")
	for i := range rng.IntN(6) {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString([]string{"", " ", "\n\t"}[rng.IntN(3)])
		b.WriteString(viewKeys[rng.IntN(len(viewKeys))])
		b.WriteString(":")
		switch k := rng.IntN(10); {
		case k == 0 && depth < 3:
			b.Write(randomProperties(rng, depth+1))
		case k == 1:
			fmt.Fprintf(&b, "[%s,%s]", viewScalars[rng.IntN(len(viewScalars))], randomProperties(rng, 3))
		default:
			b.WriteString(viewScalars[rng.IntN(len(viewScalars))])
		}
	}
	b.WriteString("}")
	out := b.String()
	if depth == 0 && rng.IntN(20) == 0 {
		out += []string{" ", "x", "}", "{}", "\n"}[rng.IntN(5)]
	}
	return []byte(out)
}

func TestPropertyViewExamples(t *testing.T) {
	m, err := schemas.ParseMeter([]byte(`{"key":"k","event_type":"t","aggregation":"SUM","value_property":"$.a.b",
		"group_by":{"g":"c"},"filter":{"$.a.x":{"exists":false}}}`))
	if err != nil {
		t.Fatal(err)
	}
	plan := schemas.NewPropertyPlan([]*schemas.Meter{&m})
	for _, tc := range []struct{ props, value, group, err string }{
		{`{"a":{"b":1.50},"c":1.50}`, "1.5", "1.5", ""},
		{`{"a":{"b":1},"a":{"c":2}}`, "", "", "value_missing: $.a.b is missing"}, // the later "a" replaces the earlier
		{`{"a":{"b":1,"b":null}}`, "", "", "value_missing: $.a.b is missing"},    // null is absent
		{`{"\u0061":{"b":"2"},"c":"\u00e9"}`, "2", "é", ""},                      // escaped key, non-ASCII string
		{`{"a":{"b":[1]}}`, "", "", "value_not_number: $.a.b is an array, not a number"},
		{`{"a":{"b":1},"c":{}}`, "", "", "group_value_not_scalar: group_by g ($.c) is an object or array"},
	} {
		view, err := plan.Scan([]byte(tc.props))
		if err != nil {
			t.Fatal(err)
		}
		if schemas.ViewDecoded(view) {
			t.Errorf("%s: Scan fell back to DecodeProperties", tc.props)
		}
		r, matched, err := m.EvaluateView(view)
		if !matched || fmt.Sprint(err) != fmt.Sprint(map[bool]any{true: nil, false: tc.err}[tc.err == ""]) {
			t.Errorf("%s: matched %v, error %v, want %q", tc.props, matched, err, tc.err)
			continue
		}
		if err == nil && (r.Value.String() != tc.value || r.GroupValues[0] != tc.group) {
			t.Errorf("%s: value %s group %q, want %s %q", tc.props, r.Value, r.GroupValues, tc.value, tc.group)
		}
	}
}

// benchMeters are those of aggregator's BenchmarkAggregate and the end to
// end of tally bench: a SUM grouped by one property, filtered, and a COUNT.
func benchMeters(b *testing.B) []*schemas.Meter {
	var out []*schemas.Meter
	for _, def := range []string{
		`{"key":"tokens","event_type":"llm.completion","aggregation":"SUM","value_property":"$.tokens.input","group_by":{"model":"model"},"filter":{"stream":{"eq":true}}}`,
		`{"key":"calls","event_type":"llm.completion","aggregation":"COUNT"}`,
	} {
		m, err := schemas.ParseMeter([]byte(def))
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, &m)
	}
	return out
}

// BenchmarkEvaluateDecoded is the reference path: DecodeProperties, then
// Evaluate for each meter.
func BenchmarkEvaluateDecoded(b *testing.B) {
	props, meters := benchRecord(b).Event.Properties, benchMeters(b)
	b.ReportAllocs()
	for b.Loop() {
		decoded, err := schemas.DecodeProperties(props)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range meters {
			if _, _, err := m.Evaluate(decoded); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkEvaluateView is the aggregator's path: one Scan of the raw
// properties for the meters' paths, then EvaluateView for each meter.
func BenchmarkEvaluateView(b *testing.B) {
	props, meters := benchRecord(b).Event.Properties, benchMeters(b)
	plan := schemas.NewPropertyPlan(meters)
	b.ReportAllocs()
	for b.Loop() {
		view, err := plan.Scan(props)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range meters {
			if _, _, err := m.EvaluateView(view); err != nil {
				b.Fatal(err)
			}
		}
	}
}

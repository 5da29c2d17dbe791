package schemas_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-oss/tally/schemas"
)

func TestParseMeterEveryAggregation(t *testing.T) {
	for _, agg := range schemas.Aggregations {
		t.Run(string(agg), func(t *testing.T) {
			value := `,"value_property":"usage.tokens"`
			if agg == schemas.AggCount {
				value = ""
			}
			for _, spelling := range []string{string(agg), strings.ToLower(string(agg))} {
				def := fmt.Sprintf(`{"key":"m-1","event_type":"llm","aggregation":%q%s,"group_by":{"model":"$.model","region":"region"}}`, spelling, value)
				m := mustParseMeter(t, def)
				if m.Aggregation != agg {
					t.Errorf("aggregation %q parsed as %q", spelling, m.Aggregation)
				}
				wantValue := "$.usage.tokens"
				if agg == schemas.AggCount {
					wantValue = ""
				}
				if m.ValueProperty != wantValue {
					t.Errorf("value_property = %q, want %q", m.ValueProperty, wantValue)
				}
				if m.Aggregation.NeedsValue() != (agg != schemas.AggCount) {
					t.Errorf("%s.NeedsValue() = %v", agg, m.Aggregation.NeedsValue())
				}
				numeric := agg != schemas.AggCount && agg != schemas.AggUniqueCount
				if m.Aggregation.IsNumeric() != numeric {
					t.Errorf("%s.IsNumeric() = %v, want %v", agg, m.Aggregation.IsNumeric(), numeric)
				}
				if got := m.GroupKeys(); !slices.Equal(got, []string{"model", "region"}) {
					t.Errorf("GroupKeys() = %v", got)
				}
				if want := map[string]string{"model": "$.model", "region": "$.region"}; !maps.Equal(m.GroupBy, want) {
					t.Errorf("group_by = %v, want the canonical paths %v", m.GroupBy, want)
				}
				for key, want := range map[string]bool{"customer_id": true, "model": true, "region": true, "tier": false, "": false} {
					if m.HasGroupKey(key) != want {
						t.Errorf("HasGroupKey(%q) = %v", key, !want)
					}
				}
			}
		})
	}
	if len(schemas.Aggregations) != 7 {
		t.Errorf("Aggregations = %v; a new aggregation needs tests here and in testdata/evaluate", schemas.Aggregations)
	}
}

// TestMeterKeyCase: keys are case-sensitive and may hold capitals, because
// other products name resources that way (PriceOps' resource "API" is a
// meter key).
func TestMeterKeyCase(t *testing.T) {
	for _, key := range []string{"API", "Tokens", "gpu-Hours_2"} {
		if m := mustParseMeter(t, `{"key":"`+key+`","event_type":"e","aggregation":"COUNT"}`); m.Key != key {
			t.Errorf("key %q parsed as %q", key, m.Key)
		}
	}
}

// TestAddressedType: the type addressing a meter is reserved for that use
// (no meter's event_type starts with its prefix, and only a prefix is
// reserved), and is an event type ingest accepts for every meter key.
func TestAddressedType(t *testing.T) {
	if got := schemas.AddressedType("API"); got != "@API" {
		t.Errorf("AddressedType(API) = %q, want @API", got)
	}
	mustParseMeter(t, `{"key":"k","event_type":"api@v2","aggregation":"COUNT"}`)
	_, err := schemas.ParseMeter([]byte(`{"key":"k","event_type":"@API","aggregation":"COUNT"}`))
	if err == nil || !strings.Contains(err.Error(), `event_type: "@API" starts with "@", which is reserved`) {
		t.Errorf("a meter of event_type @API: %v, want the reserved prefix named", err)
	}
	longest := "a" + strings.Repeat("b", 62)
	mustParseMeter(t, `{"key":"`+longest+`","event_type":"e","aggregation":"COUNT"}`)
	raw := fmt.Sprintf(`{"id":"1","type":%q,"customer_id":"c"}`, schemas.AddressedType(longest))
	if ev, err := schemas.ParseEvent([]byte(raw), schemas.EventRules{}); err != nil || ev.Type != "@"+longest {
		t.Errorf("ParseEvent(%s) = %+v, %v; want an event addressed to %s", raw, ev, err, longest)
	}
}

func TestParseMeterFields(t *testing.T) {
	def := `{"key":"tokens","name":"Tokens","description":"LLM tokens","event_type":"llm","aggregation":"SUM",
		"value_property":"$.tokens","revision":7,"created_at":"2026-03-01T00:00:00Z"}`
	m := mustParseMeter(t, def)
	want := schemas.Meter{Key: "tokens", Name: "Tokens", Description: "LLM tokens", EventType: "llm",
		Aggregation: schemas.AggSum, ValueProperty: "$.tokens", Revision: 7}
	if m.Key != want.Key || m.Name != want.Name || m.Description != want.Description || m.EventType != want.EventType ||
		m.Aggregation != want.Aggregation || m.ValueProperty != want.ValueProperty || m.Revision != want.Revision ||
		!m.CreatedAt.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) || m.Filter != nil || len(m.GroupBy) != 0 {
		t.Errorf("ParseMeter = %+v", m)
	}
	if len(m.GroupKeys()) != 0 || !m.HasGroupKey("customer_id") {
		t.Errorf("a meter without group_by: GroupKeys %v, HasGroupKey(customer_id) %v", m.GroupKeys(), m.HasGroupKey("customer_id"))
	}
	// Limits at their boundary.
	long := fmt.Sprintf(`{"key":%q,"name":%q,"description":%q,"event_type":%q,"aggregation":"COUNT","group_by":{%s}}`,
		"a"+strings.Repeat("b", 62), strings.Repeat("n", 256), strings.Repeat("d", 4096), strings.Repeat("e", schemas.MaxEventTypeLen),
		groupBy(schemas.MaxGroupKeys))
	mustParseMeter(t, long)
	// An event type is limited in characters, like the events it meters.
	mustParseMeter(t, fmt.Sprintf(`{"key":"k","event_type":%q,"aggregation":"COUNT"}`, strings.Repeat("é", schemas.MaxEventTypeLen)))
	mustParseMeter(t, fmt.Sprintf(`{"key":"k","name":%q,"event_type":"e","aggregation":"COUNT"}`, strings.Repeat("名", 256)))
}

// groupBy returns n group_by entries "g0":"$.g0", ...
func groupBy(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`"g%d":"$.g%d"`, i, i))
	}
	return strings.Join(parts, ",")
}

func TestParseMeterErrors(t *testing.T) {
	const (
		base   = `"key":"m","event_type":"e","aggregation":"SUM","value_property":"$.v"`
		filter = `{"key":"m","event_type":"e","aggregation":"COUNT","filter":%s}`
	)
	deepNot := `{"a":{"exists":true}}`
	for range 9 {
		deepNot = `{"not":` + deepNot + `}`
	}
	okDeep := `{"a":{"exists":true}}`
	for range 8 {
		okDeep = `{"not":` + okDeep + `}`
	}
	mustParseMeter(t, fmt.Sprintf(filter, okDeep))

	for _, tc := range []struct {
		name   string
		def    string
		fields []string
	}{
		{"key missing", `{"event_type":"e","aggregation":"COUNT"}`, []string{"key"}},
		{"key starts with a dash", `{"key":"-t","event_type":"e","aggregation":"COUNT"}`, []string{"key"}},
		{"key starts with an underscore", `{"key":"_t","event_type":"e","aggregation":"COUNT"}`, []string{"key"}},
		{"key with a slash", `{"key":"a/b","event_type":"e","aggregation":"COUNT"}`, []string{"key"}},
		{"key with a dot", `{"key":"a.b","event_type":"e","aggregation":"COUNT"}`, []string{"key"}},
		{"key with a quote", `{"key":"a'b","event_type":"e","aggregation":"COUNT"}`, []string{"key"}},
		{"key with a newline", `{"key":"a\nb","event_type":"e","aggregation":"COUNT"}`, []string{"key"}},
		{"key too long", fmt.Sprintf(`{"key":%q,"event_type":"e","aggregation":"COUNT"}`, strings.Repeat("k", 64)), []string{"key"}},
		{"key a number", `{"key":5,"event_type":"e","aggregation":"COUNT"}`, []string{"key"}},
		{"name too long", fmt.Sprintf(`{"key":"k","name":%q,"event_type":"e","aggregation":"COUNT"}`, strings.Repeat("n", 257)), []string{"name"}},
		{"description too long", fmt.Sprintf(`{"key":"k","description":%q,"event_type":"e","aggregation":"COUNT"}`, strings.Repeat("d", 4097)), []string{"description"}},
		{"event_type missing", `{"key":"k","aggregation":"COUNT"}`, []string{"event_type"}},
		{"event_type empty", `{"key":"k","event_type":"","aggregation":"COUNT"}`, []string{"event_type"}},
		{"event_type too long", fmt.Sprintf(`{"key":"k","event_type":%q,"aggregation":"COUNT"}`, strings.Repeat("é", schemas.MaxEventTypeLen+1)), []string{"event_type"}},
		{"event_type addressed to a meter", `{"key":"k","event_type":"@API","aggregation":"COUNT"}`, []string{"event_type"}},
		{"event_type the reserved prefix alone", `{"key":"k","event_type":"@","aggregation":"COUNT"}`, []string{"event_type"}},
		{"event_type a list", `{"key":"k","event_type":["e"],"aggregation":"COUNT"}`, []string{"event_type"}},
		{"aggregation missing", `{"key":"k","event_type":"e"}`, []string{"aggregation"}},
		{"aggregation unknown", `{"key":"k","event_type":"e","aggregation":"MEDIAN","value_property":"v"}`, []string{"aggregation"}},
		{"aggregation misspelt", `{"key":"k","event_type":"e","aggregation":"UNIQUE-COUNT","value_property":"v"}`, []string{"aggregation"}},
		{"aggregation a number", `{"key":"k","event_type":"e","aggregation":1}`, []string{"aggregation"}},
		{"value_property missing for SUM", `{"key":"k","event_type":"e","aggregation":"SUM"}`, []string{"value_property"}},
		{"value_property missing for UNIQUE_COUNT", `{"key":"k","event_type":"e","aggregation":"unique_count"}`, []string{"value_property"}},
		{"value_property given for COUNT", `{"key":"k","event_type":"e","aggregation":"COUNT","value_property":"v"}`, []string{"value_property"}},
		{"value_property bad path", `{"key":"k","event_type":"e","aggregation":"MAX","value_property":"$.a b"}`, []string{"value_property"}},
		{"value_property just $", `{"key":"k","event_type":"e","aggregation":"MAX","value_property":"$"}`, []string{"value_property"}},
		{"group_by key starts with a digit", `{` + base + `,"group_by":{"1model":"$.model"}}`, []string{"group_by.1model"}},
		{"group_by key with a dash", `{` + base + `,"group_by":{"model-name":"$.model"}}`, []string{"group_by.model-name"}},
		{"group_by key empty", `{` + base + `,"group_by":{"":"$.model"}}`, []string{"group_by."}},
		{"group_by key too long", `{` + base + `,"group_by":{"` + strings.Repeat("g", 64) + `":"$.g"}}`, []string{"group_by." + strings.Repeat("g", 64)}},
		{"group_by customer_id is reserved", `{` + base + `,"group_by":{"customer_id":"$.customer"}}`, []string{"group_by.customer_id"}},
		{"group_by bad path", `{` + base + `,"group_by":{"model":"$.a..b"}}`, []string{"group_by.model"}},
		{"group_by empty path", `{` + base + `,"group_by":{"model":""}}`, []string{"group_by.model"}},
		{"group_by too many keys", `{` + base + `,"group_by":{` + groupBy(schemas.MaxGroupKeys+1) + `}}`, []string{"group_by"}},
		{"group_by value a number", `{` + base + `,"group_by":{"model":5}}`, []string{"group_by"}},
		{"group_by an array", `{` + base + `,"group_by":["model"]}`, []string{"group_by"}},
		{"several group_by errors", `{` + base + `,"group_by":{"customer_id":"$.c","ok":"$.ok","bad-key":"$.x","path":"$$"}}`,
			[]string{"group_by.bad-key", "group_by.customer_id", "group_by.path"}},

		{"filter an array", fmt.Sprintf(filter, `[]`), []string{"filter"}},
		{"filter a string", fmt.Sprintf(filter, `"status = ok"`), []string{"filter"}},
		{"filter empty", fmt.Sprintf(filter, `{}`), []string{"filter"}},
		{"filter unknown operator", fmt.Sprintf(filter, `{"status":{"like":"o%"}}`), []string{"filter.status.like"}},
		{"filter operators empty", fmt.Sprintf(filter, `{"status":{}}`), []string{"filter.status"}},
		{"filter condition not an object", fmt.Sprintf(filter, `{"status":"ok"}`), []string{"filter.status"}},
		{"filter condition null", fmt.Sprintf(filter, `{"status":null}`), []string{"filter.status"}},
		{"filter bad property path", fmt.Sprintf(filter, `{"a b":{"eq":1}}`), []string{"filter.a b"}},
		{"filter eq an object", fmt.Sprintf(filter, `{"status":{"eq":{}}}`), []string{"filter.status.eq"}},
		{"filter eq null", fmt.Sprintf(filter, `{"status":{"eq":null}}`), []string{"filter.status.eq"}},
		{"filter ne an array", fmt.Sprintf(filter, `{"status":{"ne":[1]}}`), []string{"filter.status.ne"}},
		{"filter in not an array", fmt.Sprintf(filter, `{"status":{"in":"ok"}}`), []string{"filter.status.in"}},
		{"filter in empty", fmt.Sprintf(filter, `{"status":{"in":[]}}`), []string{"filter.status.in"}},
		{"filter in with an object", fmt.Sprintf(filter, `{"status":{"in":["ok",{}]}}`), []string{"filter.status.in[1]"}},
		{"filter in with null", fmt.Sprintf(filter, `{"status":{"in":[null]}}`), []string{"filter.status.in[0]"}},
		{"filter gt a string", fmt.Sprintf(filter, `{"n":{"gt":"5"}}`), []string{"filter.n.gt"}},
		{"filter gte a boolean", fmt.Sprintf(filter, `{"n":{"gte":true}}`), []string{"filter.n.gte"}},
		{"filter lt null", fmt.Sprintf(filter, `{"n":{"lt":null}}`), []string{"filter.n.lt"}},
		{"filter lte an array", fmt.Sprintf(filter, `{"n":{"lte":[1]}}`), []string{"filter.n.lte"}},
		{"filter exists a string", fmt.Sprintf(filter, `{"n":{"exists":"yes"}}`), []string{"filter.n.exists"}},
		{"filter exists null", fmt.Sprintf(filter, `{"n":{"exists":null}}`), []string{"filter.n.exists"}},
		{"filter exists a number", fmt.Sprintf(filter, `{"n":{"exists":1}}`), []string{"filter.n.exists"}},
		{"filter and not an array", fmt.Sprintf(filter, `{"and":{"a":{"eq":1}}}`), []string{"filter.and"}},
		{"filter and empty", fmt.Sprintf(filter, `{"and":[]}`), []string{"filter.and"}},
		{"filter or null", fmt.Sprintf(filter, `{"or":null}`), []string{"filter.or"}},
		{"filter not an array", fmt.Sprintf(filter, `{"not":[{"a":{"eq":1}}]}`), []string{"filter.not"}},
		{"filter not null", fmt.Sprintf(filter, `{"not":null}`), []string{"filter.not"}},
		{"filter nested position", fmt.Sprintf(filter, `{"and":[{"a":{"eq":1}},{"status":{"gt":"x"}}]}`), []string{"filter.and[1].status.gt"}},
		{"filter item not an object", fmt.Sprintf(filter, `{"or":[{"a":{"eq":1}},"b"]}`), []string{"filter.or[1]"}},
		{"filter deep position", fmt.Sprintf(filter, `{"or":[{"not":{"and":[{"x":{"eq":1}},{"$.u.v":{"in":[1,[2]]}}]}}]}`),
			[]string{"filter.or[0].not.and[1].$.u.v.in[1]"}},
		{"filter several errors", fmt.Sprintf(filter, `{"and":[{"a":{"gt":"x","lt":"y"}}],"or":[{"b":{"eq":1}},{"c":{"nope":1}},{"d":{"in":[]}}],"e":{"exists":0}}`),
			[]string{"filter.and[0].a.gt", "filter.and[0].a.lt", "filter.e.exists", "filter.or[1].c.nope", "filter.or[2].d.in"}},
		{"filter nested too deep", fmt.Sprintf(filter, deepNot), []string{"filter" + strings.Repeat(".not", 9)}},

		{"unknown field", `{"key":"k","event_type":"e","aggregation":"COUNT","filters":{"a":{"eq":1}}}`, []string{"filters"}},
		{"unknown field value_path", `{"key":"k","event_type":"e","aggregation":"SUM","value_path":"$.v"}`, []string{"value_path"}},
		{"revision a string", `{"key":"k","event_type":"e","aggregation":"COUNT","revision":"1"}`, []string{"revision"}},
		{"revision negative", `{"key":"k","event_type":"e","aggregation":"COUNT","revision":-1}`, []string{"revision"}},
		{"created_at not a time", `{"key":"k","event_type":"e","aggregation":"COUNT","created_at":"yesterday"}`, []string{"meter"}},
		{"not an object", `["k"]`, []string{"meter"}},
		{"a string", `"k"`, []string{"meter"}},
		{"invalid JSON", `{"key":`, []string{"meter"}},
		{"empty input", ``, []string{"meter"}},
		{"trailing object", `{"key":"k","event_type":"e","aggregation":"COUNT"} {"filter":{"a":{"eq":1}}}`, []string{"meter"}},
		{"trailing garbage", `{"key":"k","event_type":"e","aggregation":"COUNT"}]`, []string{"meter"}},
		{"everything wrong at once", `{"key":"K!","aggregation":"AVERAGE","group_by":{"customer_id":"$.c"},"filter":{"s":{"eq":[]}}}`,
			[]string{"aggregation", "event_type", "filter.s.eq", "group_by.customer_id", "key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := schemas.ParseMeter([]byte(tc.def))
			if err == nil {
				t.Fatalf("ParseMeter(%s) = %+v, want errors naming %v", tc.def, m, tc.fields)
			}
			if got := errorFields(t, err); !slices.Equal(got, tc.fields) {
				t.Errorf("ParseMeter(%s) errors name %q, want %q\n%v", tc.def, got, tc.fields, err)
			}
			if !reflect.DeepEqual(m, schemas.Meter{}) {
				t.Errorf("an invalid meter must come back as the zero Meter, got %+v", m)
			}
		})
	}
}

// TestMeterJSONRoundTrip is how meters are stored: json.Marshal, then
// ParseMeter when they are read back.
func TestMeterJSONRoundTrip(t *testing.T) {
	for _, def := range []string{
		`{"key":"calls","event_type":"api","aggregation":"COUNT"}`,
		`{"key":"tokens","name":"Tokens <in>","description":"all & more","event_type":"llm","aggregation":"sum",
		  "value_property":"usage.tokens","group_by":{"model":"model","region":"$.geo.region"},
		  "revision":123,"created_at":"2026-03-01T10:00:00.5+02:00",
		  "filter":{
		    "status":{"eq":"ok","ne":"error"},
		    "$.usage.tokens":{"gt":0,"lte":1e6,"gte":0.000000000001,"lt":99999999999999999999999999.5},
		    "tier":{"in":["pro",1.50,true]},
		    "$.and":{"exists":false},
		    "flag":{"eq":false,"exists":true},
		    "and":[{"a":{"eq":1.0}},{"b":{"ne":-0}}],
		    "or":[{"c":{"in":["x"]}},{"not":{"d":{"eq":"<&>"}}}],
		    "not":{"e":{"exists":true}}
		  }}`,
		`{"key":"users","event_type":"login","aggregation":"UNIQUE_COUNT","value_property":"$.user","filter":{"not":{"not":{"x":{"eq":"\u00e9\u2028"}}}}}`,
	} {
		m := mustParseMeter(t, def)
		stored, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("json.Marshal(%+v): %v", m, err)
		}
		back := mustParseMeter(t, string(stored))
		if !schemas.SameDefinition(m, back) {
			t.Errorf("%s\nstored as %s\nis no longer the same definition", def, stored)
		}
		again, err := json.Marshal(back)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(stored) {
			t.Errorf("stored form is not stable:\n%s\n%s", stored, again)
		}
		if back.Name != m.Name || back.Description != m.Description || back.Revision != m.Revision || !back.CreatedAt.Equal(m.CreatedAt) {
			t.Errorf("server fields lost: %+v became %+v", m, back)
		}
		// A stored meter can also be read with plain json.Unmarshal, whose
		// filter goes through Filter.UnmarshalJSON, then validated.
		var plain schemas.Meter
		if err := json.Unmarshal(stored, &plain); err != nil {
			t.Fatalf("json.Unmarshal(%s): %v", stored, err)
		}
		if err := plain.Validate(); err != nil {
			t.Fatalf("Validate after json.Unmarshal: %v", err)
		}
		if !schemas.SameDefinition(m, plain) {
			t.Errorf("json.Unmarshal of %s gives another definition", stored)
		}
	}
}

func TestSameDefinition(t *testing.T) {
	const base = `{"key":"t","event_type":"llm","aggregation":"SUM","value_property":"$.tokens","group_by":{"model":"$.model"},"filter":{"status":{"eq":"ok"},"n":{"gt":1}}}`
	a := mustParseMeter(t, base)
	for _, tc := range []struct {
		name string
		def  string
		same bool
	}{
		{"identical", base, true},
		{"name, description, revision and created_at are not the definition",
			`{"key":"t","name":"N","description":"D","revision":9,"created_at":"2026-01-01T00:00:00Z","event_type":"llm","aggregation":"SUM","value_property":"$.tokens","group_by":{"model":"$.model"},"filter":{"status":{"eq":"ok"},"n":{"gt":1}}}`, true},
		{"short paths are the same paths",
			`{"key":"t","event_type":"llm","aggregation":"sum","value_property":"tokens","group_by":{"model":"model"},"filter":{"n":{"gt":1.0},"status":{"eq":"ok"}}}`, true},
		{"other key", strings.Replace(base, `"key":"t"`, `"key":"u"`, 1), false},
		{"other event type", strings.Replace(base, `"llm"`, `"llm2"`, 1), false},
		{"other aggregation", strings.Replace(base, `"SUM"`, `"MAX"`, 1), false},
		{"other value property", strings.Replace(base, `"$.tokens"`, `"$.tokens2"`, 1), false},
		{"other group path", strings.Replace(base, `"$.model"`, `"$.model2"`, 1), false},
		{"other group key", strings.Replace(base, `"model":`, `"model2":`, 1), false},
		{"no group_by", strings.Replace(base, `"group_by":{"model":"$.model"},`, ``, 1), false},
		{"other filter operand", strings.Replace(base, `"ok"`, `"OK"`, 1), false},
		{"other filter number", strings.Replace(base, `"gt":1`, `"gt":1.000000000000000000001`, 1), false},
		{"other filter operator", strings.Replace(base, `"gt":1`, `"gte":1`, 1), false},
		{"no filter", strings.Replace(base, `,"filter":{"status":{"eq":"ok"},"n":{"gt":1}}`, ``, 1), false},
		{"string operand instead of number", strings.Replace(base, `"gt":1`, `"gt":1,"eq":"1"`, 1), false},
	} {
		b := mustParseMeter(t, tc.def)
		if got := schemas.SameDefinition(a, b); got != tc.same {
			t.Errorf("%s: SameDefinition = %v, want %v", tc.name, got, tc.same)
		}
		if got := schemas.SameDefinition(b, a); got != tc.same {
			t.Errorf("%s: SameDefinition is not symmetric", tc.name)
		}
	}
}

// TestMeterValidateInGo checks meters built in Go rather than parsed.
func TestMeterValidateInGo(t *testing.T) {
	m := schemas.Meter{Key: "tokens", EventType: "llm", Aggregation: schemas.AggSum, ValueProperty: "tokens",
		GroupBy: map[string]string{"model": "model"}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if m.ValueProperty != "$.tokens" || m.GroupBy["model"] != "$.model" || !slices.Equal(m.GroupKeys(), []string{"model"}) {
		t.Errorf("Validate did not prepare the meter: %+v, group keys %v", m, m.GroupKeys())
	}
	r, matched, err := m.Evaluate(mustProps(t, `{"tokens": 3, "model": "gpt"}`))
	if err != nil || !matched || r.Value.String() != "3" || !slices.Equal(r.GroupValues, []string{"gpt"}) {
		t.Errorf("Evaluate = %+v, %v, %v", r, matched, err)
	}

	// Validating again after a change takes the change.
	m.GroupBy = nil
	m.ValueProperty = "$.other"
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(m.GroupKeys()) != 0 {
		t.Errorf("GroupKeys after removing group_by = %v", m.GroupKeys())
	}
	if r, _, _ := m.Evaluate(mustProps(t, `{"tokens": 3, "other": 4}`)); r.Value.String() != "4" {
		t.Errorf("value after changing value_property = %v", r.Value)
	}

	// A failed validation reports every problem and leaves the definition
	// as it was, so that it can be shown back to its author.
	bad := schemas.Meter{Key: "Bad Key", Aggregation: "sum", ValueProperty: "$.a b"}
	err = bad.Validate()
	if got := errorFields(t, err); !slices.Equal(got, []string{"aggregation", "event_type", "key", "value_property"}) {
		t.Errorf("Validate errors name %v: %v", got, err)
	}
	if bad.ValueProperty != "$.a b" {
		t.Errorf("a failed Validate changed value_property to %q", bad.ValueProperty)
	}
}

// TestMeterValidateCopies checks that validating copies of one meter, which
// share its group_by map, neither races nor changes the other copies.
// Meters are copied out of stores and caches; run with -race.
func TestMeterValidateCopies(t *testing.T) {
	shared := map[string]string{"model": "model", "region": "$.region"}
	original := schemas.Meter{Key: "k", EventType: "e", Aggregation: schemas.AggCount, GroupBy: shared}
	var wg sync.WaitGroup
	for range 8 {
		m := original
		wg.Go(func() {
			for range 100 {
				if err := m.Validate(); err != nil {
					t.Error(err)
					return
				}
			}
			if m.GroupBy["model"] != "$.model" {
				t.Errorf("validated copy group_by = %v", m.GroupBy)
			}
		})
	}
	wg.Wait()
	if shared["model"] != "model" {
		t.Errorf("Validate of a copy changed the shared group_by map: %v", shared)
	}
}

// TestParseStoredMeter: a meter stored before the addressed prefix was
// reserved still decodes (and meters); a new one may not use the prefix.
func TestParseStoredMeter(t *testing.T) {
	def := []byte(`{"key":"mentions","event_type":"@mention","aggregation":"COUNT"}`)
	if _, err := schemas.ParseMeter(def); err == nil {
		t.Error("a new meter with the reserved prefix was accepted")
	}
	m, err := schemas.ParseStoredMeter(def)
	if err != nil || m.EventType != "@mention" {
		t.Errorf("stored meter: %+v, %v", m, err)
	}
	if _, err := schemas.ParseStoredMeter([]byte(`{"key":"-bad","event_type":"e","aggregation":"COUNT"}`)); err == nil {
		t.Error("a stored meter with an invalid key decoded")
	}
}

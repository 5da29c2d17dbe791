package schemas_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/tally-oss/tally/schemas"
)

// TestEvaluateScripts runs testdata/evaluate/*.txt: events in, expected
// readings out, in the style of Prometheus's promqltest scripts. Each event
// takes the whole path from producer to aggregator: ParseEvent,
// EncodeRecord, DecodeRecord, DecodeProperties, Evaluate.
//
//	# a comment
//	meter {"key": ..., "aggregation": ...}   the meter of the events that follow
//	event {"tokens": 5}                      an event's properties, then one of:
//	=> value=5 model=gpt                     its reading: value, distinct, and
//	                                         group values (omitted ones are "")
//	=> no match                              the meter's filter excludes it
//	=> error value_not_number                it cannot be metered: the reason
//	=> rejected properties                   ParseEvent rejects it: the field
//	sum 12.5                                 the sum of this meter's readings
//
// Values with spaces, or empty, are Go-quoted: model="" region="eu west".
func TestEvaluateScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/evaluate/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scripts in testdata/evaluate")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			runEvaluateScript(t, file)
		})
	}
}

type scriptState struct {
	meter   *schemas.Meter
	sum     decimal.Decimal
	events  int
	pending string // properties of an event awaiting its "=>" line
	line    int    // of the pending event
}

func runEvaluateScript(t *testing.T, file string) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st scriptState
	scanner := bufio.NewScanner(f)
	scanner.Buffer(nil, 1<<20)
	for n := 1; scanner.Scan(); n++ {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pos := fmt.Sprintf("%s:%d", file, n)
		cmd, arg, _ := strings.Cut(line, " ")
		arg = strings.TrimSpace(arg)
		if st.pending != "" && cmd != "=>" {
			t.Fatalf("%s: the event of line %d has no \"=>\" line", pos, st.line)
		}
		switch cmd {
		case "meter":
			m, err := schemas.ParseMeter([]byte(arg))
			if err != nil {
				t.Fatalf("%s: meter: %v", pos, err)
			}
			st = scriptState{meter: &m, events: st.events}
		case "event":
			if st.meter == nil {
				t.Fatalf("%s: event before any meter", pos)
			}
			st.pending, st.line = arg, n
		case "=>":
			if st.pending == "" {
				t.Fatalf("%s: \"=>\" without an event", pos)
			}
			st.events++
			st.check(t, pos, arg)
			st.pending = ""
		case "sum":
			want, err := decimal.NewFromString(arg)
			if err != nil {
				t.Fatalf("%s: sum %q: %v", pos, arg, err)
			}
			if !st.sum.Equal(want) {
				t.Errorf("%s: sum = %s, want %s", pos, st.sum, want)
			}
		default:
			t.Fatalf("%s: unknown command %q", pos, cmd)
		}
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	if st.pending != "" {
		t.Fatalf("%s: the event of line %d has no \"=>\" line", file, st.line)
	}
}

// check evaluates the pending event and compares the outcome with want.
func (st *scriptState) check(t *testing.T, pos, want string) {
	t.Helper()
	raw := fmt.Sprintf(`{"id":"evt-%d","type":%q,"customer_id":"cust-1","properties":%s}`,
		st.events, st.meter.EventType, st.pending)
	ev, err := schemas.ParseEvent([]byte(raw), schemas.EventRules{Now: testNow})
	if err != nil {
		var fe *schemas.FieldError
		if errors.As(err, &fe) && want == "rejected "+fe.Field {
			return
		}
		t.Errorf("%s: event %s rejected (%v), want %s", pos, st.pending, err, want)
		return
	}
	_, value, err := schemas.EncodeRecord(schemas.Record{OrgID: "org-1", Event: ev, IngestedAt: testNow})
	if err != nil {
		t.Fatalf("%s: EncodeRecord: %v", pos, err)
	}
	rec, err := schemas.DecodeRecord(value)
	if err != nil {
		t.Fatalf("%s: DecodeRecord(%s): %v", pos, value, err)
	}
	props, err := schemas.DecodeProperties(rec.Event.Properties)
	if err != nil {
		t.Fatalf("%s: DecodeProperties(%s): %v", pos, rec.Event.Properties, err)
	}
	r, matched, err := st.meter.Evaluate(props)
	var got string
	var ee *schemas.EvalError
	switch {
	case errors.As(err, &ee):
		got = "error " + ee.Reason
	case err != nil:
		t.Fatalf("%s: Evaluate returned %T %v, want *schemas.EvalError", pos, err, err)
	case !matched:
		got = "no match"
	default:
		st.sum = st.sum.Add(r.Value)
		if strings.HasPrefix(want, "value=") {
			st.compareReading(t, pos, r, want)
			return
		}
		got = formatReading(st.meter, r)
	}
	if got != want {
		t.Errorf("%s: event %s\n got => %s\nwant => %s", pos, st.pending, got, want)
	}
}

func (st *scriptState) compareReading(t *testing.T, pos string, r schemas.Reading, want string) {
	t.Helper()
	fields, err := parseAssignments(want)
	if err != nil {
		t.Fatalf("%s: %v", pos, err)
	}
	expected := map[string]string{"distinct": ""}
	for _, k := range st.meter.GroupKeys() {
		expected[k] = ""
	}
	for k, v := range fields {
		if _, ok := expected[k]; !ok && k != "value" {
			t.Fatalf("%s: %q is neither value, distinct nor a group key of the meter", pos, k)
		}
		expected[k] = v
	}
	wantValue, err := decimal.NewFromString(expected["value"])
	if err != nil {
		t.Fatalf("%s: value %q: %v", pos, expected["value"], err)
	}
	ok := r.Value.Equal(wantValue) && r.Value.String() == wantValue.String() && r.Distinct == expected["distinct"]
	for i, k := range st.meter.GroupKeys() {
		ok = ok && r.GroupValues[i] == expected[k]
	}
	if !ok {
		t.Errorf("%s: event %s\n got => %s\nwant => %s", pos, st.pending, formatReading(st.meter, r), want)
	}
}

func formatReading(m *schemas.Meter, r schemas.Reading) string {
	parts := []string{"value=" + r.Value.String()}
	if r.Distinct != "" {
		parts = append(parts, "distinct="+quoteIfNeeded(r.Distinct))
	}
	for i, k := range m.GroupKeys() {
		if r.GroupValues[i] != "" {
			parts = append(parts, k+"="+quoteIfNeeded(r.GroupValues[i]))
		}
	}
	return strings.Join(parts, " ")
}

func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\"=") || strconv.Quote(s) != `"`+s+`"` {
		return strconv.Quote(s)
	}
	return s
}

// parseAssignments parses `a=1 b="x y" c=""`.
func parseAssignments(s string) (map[string]string, error) {
	out := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		key, rest, ok := strings.Cut(s, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return nil, fmt.Errorf("%q: want key=value", s)
		}
		var value string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, fmt.Errorf("%q: %v", rest, err)
			}
			value, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			value, rest, _ = strings.Cut(rest, " ")
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%s given twice", key)
		}
		out[key] = value
		s = rest
	}
	return out, nil
}

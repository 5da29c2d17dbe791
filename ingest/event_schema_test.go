package ingest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/apispec"
)

// The event JSON Schema (schemas/event.schema.json) says what ingest
// accepts: every event of this table that ingest accepts validates against
// the schema, and every event ingest rejects for its shape (a member
// missing, of the wrong type or length) does not. The schema cannot say
// everything ingest checks: the cases marked beyond are valid for the
// schema and rejected by ingest for a rule its description states (time
// window, number and nesting limits, duplicate names, unpaired
// surrogates), so a producer that validates against the schema can still
// be told no, and this table says exactly where.
func TestEventJSONSchema(t *testing.T) {
	spec, err := apispec.Load()
	if err != nil {
		t.Fatal(err)
	}
	schema, err := spec.EventSchema()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	recent := now.Add(-time.Hour).Format(time.RFC3339)
	long := func(n int) string { return strings.Repeat("é", n) } // counted in characters, not bytes
	deep := `{"id":"deep","type":"t","customer_id":"c","properties":` + strings.Repeat(`{"a":`, 33) + `1` + strings.Repeat(`}`, 33) + `}`
	tests := []struct {
		name   string
		event  string
		accept bool   // ingest accepts it
		beyond string // why the schema accepts what ingest rejects; "" when they agree
	}{
		{"minimal", `{"id":"e1","type":"api_call","customer_id":"c1"}`, true, ""},
		{"every field", `{"id":"e2","type":"api_call","customer_id":"c1","time":"` + recent + `","source":"sdk","properties":{"tokens":12.5,"model":"m","nested":{"list":[1,2]}}}`, true, ""},
		{"cloudevents names", `{"specversion":"1.0","id":"e3","source":"sdk","type":"api_call","subject":"c1","time":"` + recent + `","data":{"tokens":"3"}}`, true, ""},
		{"null customer_id, subject given", `{"id":"e4","type":"t","customer_id":null,"subject":"c1"}`, true, ""},
		{"null optional members", `{"id":"e5","type":"t","customer_id":"c1","time":null,"source":null,"properties":null}`, true, ""},
		{"unknown members ignored", `{"id":"e6","type":"t","customer_id":"c1","region":"eu","count":3}`, true, ""},
		{"longest id, type and customer", `{"id":"` + long(128) + `","type":"` + long(128) + `","customer_id":"` + long(256) + `"}`, true, ""},
		{"time with offset and nanoseconds", `{"id":"e7","type":"t","customer_id":"c1","time":"` + now.Add(-time.Minute).In(time.FixedZone("", 2*3600)).Format(time.RFC3339Nano) + `"}`, true, ""},

		{"id missing", `{"type":"t","customer_id":"c1"}`, false, ""},
		{"id null", `{"id":null,"type":"t","customer_id":"c1"}`, false, ""},
		{"id empty", `{"id":"","type":"t","customer_id":"c1"}`, false, ""},
		{"id a number", `{"id":5,"type":"t","customer_id":"c1"}`, false, ""},
		{"id too long", `{"id":"` + long(129) + `","type":"t","customer_id":"c1"}`, false, ""},
		{"type missing", `{"id":"e","customer_id":"c1"}`, false, ""},
		{"type too long", `{"id":"e","type":"` + long(129) + `","customer_id":"c1"}`, false, ""},
		{"customer missing", `{"id":"e","type":"t"}`, false, ""},
		{"customer empty", `{"id":"e","type":"t","customer_id":""}`, false, ""},
		{"customer too long", `{"id":"e","type":"t","customer_id":"` + long(257) + `"}`, false, ""},
		{"customer a number beside a subject", `{"id":"e","type":"t","customer_id":7,"subject":"c1"}`, false, ""},
		{"subject empty", `{"id":"e","type":"t","subject":""}`, false, ""},
		{"source empty", `{"id":"e","type":"t","customer_id":"c1","source":""}`, false, ""},
		{"time not RFC 3339", `{"id":"e","type":"t","customer_id":"c1","time":"yesterday"}`, false, ""},
		{"time with a lowercase t and z", `{"id":"e","type":"t","customer_id":"c1","time":"` + strings.ToLower(recent) + `"}`, false, ""},
		{"time a number", `{"id":"e","type":"t","customer_id":"c1","time":1700000000}`, false, ""},
		{"properties an array", `{"id":"e","type":"t","customer_id":"c1","properties":[1]}`, false, ""},
		{"properties a string", `{"id":"e","type":"t","customer_id":"c1","properties":"x"}`, false, ""},
		{"data an array", `{"id":"e","type":"t","subject":"c1","data":[]}`, false, ""},
		{"not an object", `"e"`, false, ""},
		{"an array", `[{"id":"e","type":"t","customer_id":"c1"}]`, false, ""},

		{"time older than the maximum age", `{"id":"e","type":"t","customer_id":"c1","time":"2001-01-01T00:00:00Z"}`, false, "time window (ingest.max-event-age)"},
		{"time an hour ahead", `{"id":"e","type":"t","customer_id":"c1","time":"` + now.Add(time.Hour).Format(time.RFC3339) + `"}`, false, "at most 5 minutes in the future"},
		{"properties nested 33 levels", deep, false, "nesting of at most 32 levels"},
		{"a number of 101 characters", `{"id":"e","type":"t","customer_id":"c1","properties":{"n":1` + strings.Repeat("0", 100) + `}}`, false, "numbers of at most 100 characters"},
		{"a number of 10^26", `{"id":"e","type":"t","customer_id":"c1","properties":{"n":1e26}}`, false, "magnitude below 10^26"},
		{"a member name twice", `{"id":"e","type":"t","customer_id":"c1","properties":{"a":1,"a":2}}`, false, "each member name once"},
		{"a leap second", `{"id":"e","type":"t","customer_id":"c1","time":"` + now.AddDate(0, 0, -1).Format(time.DateOnly) + `T23:59:60Z"}`, false, "RFC 3339 has leap seconds; Go's time.Parse does not"},
		{"an unpaired surrogate", `{"id":"e\ud800","type":"t","customer_id":"c1"}`, false, "no unpaired surrogate escapes"},
	}
	pub := &recordingPublisher{}
	h := newTestService(t, testConfig(), Deps{Publisher: pub}).Handler()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.accept && tt.beyond != "" {
				t.Fatal("bad case: beyond marks an event ingest rejects")
			}
			code, body := serve(h, request{body: []byte("[" + tt.event + "]")})
			var resp Response
			_ = json.Unmarshal(body, &resp)
			accepted := code == http.StatusAccepted && resp.Accepted == 1
			if !accepted && code != http.StatusBadRequest {
				t.Fatalf("ingest answered %d %s, want 202 or 400", code, body)
			}
			if accepted != tt.accept {
				t.Errorf("ingest accepted = %v (%d %s), want %v", accepted, code, body, tt.accept)
			}
			schemaErr := apispec.ValidateJSON(schema, []byte(tt.event))
			wantValid := tt.accept || tt.beyond != ""
			switch {
			case wantValid && schemaErr != nil:
				t.Errorf("the schema rejects it:\n%v", schemaErr)
			case !wantValid && schemaErr == nil:
				t.Errorf("the schema accepts an event ingest rejects for its shape (%s)", body)
			}
		})
	}
}

// The limits the description states are ingest's.
func TestOpenAPILimits(t *testing.T) {
	spec, err := apispec.Load()
	if err != nil {
		t.Fatal(err)
	}
	for pointer, want := range map[string]int{
		"/components/schemas/LagoEventBatch/properties/events/maxItems":          LagoMaxBatch,
		"/components/schemas/PriceOpsUsageRecord/properties/usage_data/maxItems": MaxUsageItems,
	} {
		v, err := spec.Lookup(pointer)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(v); got != fmt.Sprint(want) {
			t.Errorf("%s = %s, want %d", pointer, got, want)
		}
	}
}

package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/schemas"
)

func TestLagoTimestamp(t *testing.T) {
	tests := []struct {
		raw  string
		want string // RFC 3339 nano; "" for an error
	}{
		{`1690000000`, "2023-07-22T04:26:40Z"},
		{`1690000000.5`, "2023-07-22T04:26:40.5Z"},
		{`"1690000000.5"`, "2023-07-22T04:26:40.5Z"},
		{`"1690000000"`, "2023-07-22T04:26:40Z"},
		{`" 1690000000 "`, "2023-07-22T04:26:40Z"},
		{`1.69e9`, "2023-07-22T04:26:40Z"},
		{`1690000000.123456789987`, "2023-07-22T04:26:40.123456789Z"}, // beyond nanoseconds: truncated
		{`0`, "1970-01-01T00:00:00Z"},
		{`253402300799.999`, "9999-12-31T23:59:59.999Z"},
		{`253402300800`, ""},
		{`-1`, ""},
		{`"2023-07-22T04:26:40Z"`, ""}, // Lago reads Unix seconds only
		{`""`, ""},
		{`"abc"`, ""},
		{`true`, ""},
		{`{"s":1}`, ""},
		{`[1690000000]`, ""},
	}
	for _, tt := range tests {
		got, err := lagoTimestamp(json.RawMessage(tt.raw))
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("lagoTimestamp(%s) = %s, want an error", tt.raw, got.Format(time.RFC3339Nano))
		case tt.want != "" && err != nil:
			t.Errorf("lagoTimestamp(%s): %v", tt.raw, err)
		case tt.want != "" && got.Format(time.RFC3339Nano) != tt.want:
			t.Errorf("lagoTimestamp(%s) = %s, want %s", tt.raw, got.Format(time.RFC3339Nano), tt.want)
		}
	}
}

func TestIsLagoEnvelope(t *testing.T) {
	tests := []struct {
		body string
		want bool
	}{
		{`{"event":{"transaction_id":"t1","code":"api"}}`, true},
		{" \n {\"event\": {}}", true},
		{`{"event":{"transaction_id":"t1"},"extra":1}`, true},
		{`{"id":"e1","type":"t","customer_id":"c","event":{}}`, false}, // a native event with a property named event
		{`{"id":"e1","type":"t","customer_id":"c"}`, false},
		{`{"event":"api_call"}`, false},
		{`{"event":null}`, false},
		{`{"events":[{"transaction_id":"t1"}]}`, false},
		{`[{"event":{}}]`, false},
		{`{"event":{}`, false},
		{``, false},
	}
	for _, tt := range tests {
		if got := isLagoEnvelope([]byte(tt.body)); got != tt.want {
			t.Errorf("isLagoEnvelope(%s) = %v, want %v", tt.body, got, tt.want)
		}
	}
}

func TestDecodeLagoEvents(t *testing.T) {
	many := func(n int) string {
		evs := make([]string, n)
		for i := range evs {
			evs[i] = fmt.Sprintf(`{"transaction_id":"t%d"}`, i)
		}
		return `{"events":[` + strings.Join(evs, ",") + `]}`
	}
	tests := []struct {
		name       string
		body       string
		batch      bool
		wantEvents int
		wantStatus int
		wantError  string // substring of the error body
	}{
		{name: "single", body: `{"event":{"transaction_id":"t1"}}`, wantEvents: 1},
		{name: "single without event", body: `{"events":[{}]}`, wantStatus: 400, wantError: `"BadRequest: param is missing or the value is empty: event"`},
		{name: "single null event", body: `{"event":null}`, wantStatus: 400, wantError: "param is missing"},
		{name: "not JSON", body: `{"event":`, wantStatus: 400, wantError: "BadRequest: the body is not a JSON object"},
		{name: "not an object", body: `[{"event":{}}]`, wantStatus: 400, wantError: "BadRequest"},
		{name: "batch", body: many(2), batch: true, wantEvents: 2},
		{name: "batch at the limit", body: many(LagoMaxBatch), batch: true, wantEvents: LagoMaxBatch},
		{name: "batch of 101", body: many(LagoMaxBatch + 1), batch: true, wantStatus: 422, wantError: `"error_details":{"events":["too_many_events"]}`},
		{name: "batch empty", body: `{"events":[]}`, batch: true, wantStatus: 422, wantError: `{"events":["no_events"]}`},
		{name: "batch without events", body: `{"event":{}}`, batch: true, wantStatus: 422, wantError: `{"events":["no_events"]}`},
		{name: "batch events not an array", body: `{"events":{"transaction_id":"t1"}}`, batch: true, wantStatus: 400, wantError: "events must be an array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, lerr := decodeLagoEvents([]byte(tt.body), tt.batch)
			if tt.wantStatus == 0 {
				if lerr != nil || len(events) != tt.wantEvents {
					t.Fatalf("got %d events, error %+v; want %d events", len(events), lerr, tt.wantEvents)
				}
				return
			}
			if lerr == nil {
				t.Fatalf("got %d events, want status %d", len(events), tt.wantStatus)
			}
			body, _ := json.Marshal(lerr)
			if lerr.Status != tt.wantStatus || !strings.Contains(string(body), tt.wantError) || !strings.Contains(string(body), fmt.Sprintf(`"status":%d`, tt.wantStatus)) {
				t.Errorf("error %s (status %d), want status %d containing %s", body, lerr.Status, tt.wantStatus, tt.wantError)
			}
		})
	}
}

// TestParseLagoEvent covers the mapping of one event before the catalog
// lookup: which fields are wrong, by Lago's names, and the native event.
func TestParseLagoEvent(t *testing.T) {
	arrival := time.Date(2023, 7, 25, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		raw        string
		wantErrs   fieldErrors
		wantNative string // when no errors
	}{
		{
			name:       "customer, integer timestamp",
			raw:        `{"transaction_id":"t1","external_customer_id":"c1","code":"api_calls","timestamp":1690000000,"properties":{"tokens":12}}`,
			wantErrs:   fieldErrors{},
			wantNative: `{"id":"t1","type":"api_calls","customer_id":"c1","time":"2023-07-22T04:26:40Z","properties":{"tokens":12}}`,
		},
		{
			name:       "fractional string timestamp",
			raw:        `{"transaction_id":"t1","external_customer_id":"c1","code":"api_calls","timestamp":"1690000000.5"}`,
			wantErrs:   fieldErrors{},
			wantNative: `{"id":"t1","type":"api_calls","customer_id":"c1","time":"2023-07-22T04:26:40.5Z"}`,
		},
		{
			name:       "fractional number timestamp",
			raw:        `{"transaction_id":"t1","external_customer_id":"c1","code":"api_calls","timestamp":1690000000.25}`,
			wantErrs:   fieldErrors{},
			wantNative: `{"id":"t1","type":"api_calls","customer_id":"c1","time":"2023-07-22T04:26:40.25Z"}`,
		},
		{
			name:       "absent timestamp is the arrival time",
			raw:        `{"transaction_id":"t1","external_customer_id":"c1","code":"api_calls","properties":{"html":"<b>"}}`,
			wantErrs:   fieldErrors{},
			wantNative: `{"id":"t1","type":"api_calls","customer_id":"c1","time":"2023-07-25T00:00:00Z","properties":{"html":"<b>"}}`,
		},
		{
			name:       "null timestamp is the arrival time",
			raw:        `{"transaction_id":"t1","external_customer_id":"c1","code":"api_calls","timestamp":null}`,
			wantErrs:   fieldErrors{},
			wantNative: `{"id":"t1","type":"api_calls","customer_id":"c1","time":"2023-07-25T00:00:00Z"}`,
		},
		{
			name:     "subscription only waits for the lookup",
			raw:      `{"transaction_id":"t1","external_subscription_id":"s1","code":"api_calls"}`,
			wantErrs: fieldErrors{},
		},
		{
			name:     "missing fields",
			raw:      `{"properties":{}}`,
			wantErrs: fieldErrors{"transaction_id": {lagoMandatory}, "code": {lagoMandatory}, "external_subscription_id": {lagoMandatory}},
		},
		{
			name:     "empty and null fields",
			raw:      `{"transaction_id":"","code":null,"external_customer_id":"","external_subscription_id":null}`,
			wantErrs: fieldErrors{"transaction_id": {lagoMandatory}, "code": {lagoMandatory}, "external_subscription_id": {lagoMandatory}},
		},
		{
			name:     "invalid timestamp",
			raw:      `{"transaction_id":"t1","external_customer_id":"c1","code":"api_calls","timestamp":"2023-07-22T04:26:40Z"}`,
			wantErrs: fieldErrors{"timestamp": {lagoInvalidFormat}},
		},
		{
			name:     "ids of the wrong type",
			raw:      `{"transaction_id":"t1","external_customer_id":42,"external_subscription_id":["s1"],"code":"api_calls"}`,
			wantErrs: fieldErrors{"external_customer_id": {"must be a string"}, "external_subscription_id": {"must be a string"}},
		},
		{name: "not an object", raw: `"t1"`, wantErrs: fieldErrors{"event": {"must be a JSON object"}}},
		{name: "null event", raw: `null`, wantErrs: fieldErrors{"event": {"must be a JSON object"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := parseLagoEvent(json.RawMessage(tt.raw), arrival)
			if !reflect.DeepEqual(in.errs, tt.wantErrs) {
				t.Errorf("errors %v, want %v", in.errs, tt.wantErrs)
			}
			if tt.wantNative != "" {
				if got := string(in.native()); got != tt.wantNative {
					t.Errorf("native\n got %s\nwant %s", got, tt.wantNative)
				}
			}
		})
	}
}

func TestLagoEventID(t *testing.T) {
	a := lagoEventID("acme", "c1", "t1")
	if a != lagoEventID("acme", "c1", "t1") {
		t.Error("lago_id is not stable")
	}
	for _, other := range []string{lagoEventID("globex", "c1", "t1"), lagoEventID("acme", "c2", "t1"), lagoEventID("acme", "c1", "t2"),
		lagoEventID("acme", "c1/t1", ""), lagoEventID("acme", "c", "1t1")} {
		if other == a {
			t.Errorf("lago_id %s shared by two identities", a)
		}
	}
	if len(a) != 36 || a[14] != '5' {
		t.Errorf("lago_id %s is not a version 5 UUID", a)
	}
}

// FuzzLagoEvents feeds arbitrary bodies through Lago's framing and
// mapping: it must never panic, and an event it finds no fault with must
// map onto a native event that names the same transaction_id and code, or
// that schemas.ParseEvent rejects with a field error.
func FuzzLagoEvents(f *testing.F) {
	for _, seed := range []string{
		`{"event":` + lagoEv("t1", "c1", "", "1690000000") + `}`,
		`{"events":[` + lagoEv("t1", "", "s1", `"1690000000.5"`) + `,` + lagoEv("t2", "c1", "s1", "") + `]}`,
		`{"event":{"transaction_id":"t1","external_customer_id":"c","code":"k","timestamp":1e400}}`,
		`{"event":{"transaction_id":"\ud800","external_customer_id":"c","code":"k","properties":[]}}`,
		`{"events":[1,null,"x",{}]}`, `{"event":7}`, `{}`, `[`, "\xff",
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	arrival := time.Date(2023, 7, 25, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte, batch bool) {
		_ = isLagoEnvelope(body)
		raws, lerr := decodeLagoEvents(body, batch)
		if lerr != nil {
			if lerr.Status != 400 && lerr.Status != 422 {
				t.Fatalf("status %d", lerr.Status)
			}
			return
		}
		if len(raws) == 0 || len(raws) > LagoMaxBatch {
			t.Fatalf("%d events", len(raws))
		}
		for _, raw := range raws {
			in := parseLagoEvent(raw, arrival)
			if len(in.errs) > 0 || in.customer == "" {
				continue // the subscription of the rest is looked up first
			}
			ev, err := schemas.ParseEvent(in.native(), schemas.EventRules{Now: arrival, MaxAge: 100 * 365 * 24 * time.Hour})
			var fe *schemas.FieldError
			switch {
			case errors.As(err, &fe):
			case err != nil:
				t.Fatalf("ParseEvent: %v", err)
			default:
				var id, code string
				_ = json.Unmarshal(in.ev.TransactionID, &id)
				_ = json.Unmarshal(in.ev.Code, &code)
				if ev.ID != id || ev.Type != code || ev.CustomerID != in.customer {
					t.Fatalf("event %+v from %s", ev, raw)
				}
			}
		}
	})
}

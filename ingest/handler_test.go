package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

func event(id, customer string) string {
	return fmt.Sprintf(`{"id":%q,"type":"api_call","customer_id":%q,"properties":{"tokens":"12.5"}}`, id, customer)
}

func array(events ...string) []byte { return []byte("[" + strings.Join(events, ",") + "]") }

func manyEvents(n int) []string {
	events := make([]string, n)
	for i := range events {
		events[i] = event(fmt.Sprintf("e%d", i), "c1")
	}
	return events
}

func TestPostEvents(t *testing.T) {
	hourAgo := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	cloudEvent := `{"specversion":"1.0","id":"ce-1","source":"billing-sdk","type":"api_call","subject":"cust-9","time":"` + hourAgo + `","data":{"tokens":"3"}}`
	tests := []struct {
		name      string
		req       request
		maxEvents int // 0: default
		wantCode  int
		wantError string      // httpapi error code
		wantMsg   string      // substring of the error message
		accepted  int         // events published and reported accepted
		rejected  []Rejection // Error is not compared
		check     func(t *testing.T, recs []schemas.Record)
	}{
		{name: "single", req: request{body: []byte(event("e1", "c1")), contentType: "application/json"}, wantCode: 202, accepted: 1},
		{name: "no content type is JSON", req: request{body: []byte(event("e1", "c1"))}, wantCode: 202, accepted: 1},
		{name: "charset parameter", req: request{body: []byte(event("e1", "c1")), contentType: "application/json; charset=utf-8"}, wantCode: 202, accepted: 1},
		{name: "array", req: request{body: array(event("e1", "c1"), event("e2", "c2"), event("e3", "c1"))}, wantCode: 202, accepted: 3},
		{name: "array with whitespace", req: request{body: []byte("\n  [ " + event("e1", "c1") + " ,\n" + event("e2", "c1") + " ]\n")}, wantCode: 202, accepted: 2},
		{name: "ndjson", req: request{body: lines(event("e1", "c1"), "", "  ", event("e2", "c2")+"\r", ""), contentType: "application/x-ndjson"}, wantCode: 202, accepted: 2},
		{name: "gzip single", req: request{body: gz([]byte(event("e1", "c1"))), contentEncoding: "gzip"}, wantCode: 202, accepted: 1},
		{name: "gzip array", req: request{body: gz(array(manyEvents(50)...)), contentType: "application/json", contentEncoding: "gzip"}, wantCode: 202, accepted: 50},
		{name: "gzip ndjson", req: request{body: gz(lines(manyEvents(20)...)), contentType: "application/x-ndjson", contentEncoding: "gzip"}, wantCode: 202, accepted: 20},
		{
			name: "cloudevents subject and data", req: request{body: []byte(cloudEvent), contentType: "application/cloudevents+json"}, wantCode: 202, accepted: 1,
			check: func(t *testing.T, recs []schemas.Record) {
				ev := recs[0].Event
				if ev.ID != "ce-1" || ev.CustomerID != "cust-9" || ev.Source != "billing-sdk" || string(ev.Properties) != `{"tokens":"3"}` || ev.Time.Format(time.RFC3339) != hourAgo {
					t.Errorf("event = %+v", ev)
				}
			},
		},
		{name: "cloudevents batch", req: request{body: array(cloudEvent, event("e2", "c1")), contentType: "application/cloudevents-batch+json"}, wantCode: 202, accepted: 2},
		{
			name: "mixed valid and invalid",
			req: request{body: array(
				event("e0", "c1"),
				`{"id":"e1","type":"api_call"}`,
				event("e2", "c1"),
				`42`,
				`{"id":"e4","type":"api_call","customer_id":"c1","time":"yesterday"}`,
				`{"id":"e5","type":"api_call","customer_id":"c1","properties":[1]}`,
			)},
			wantCode: 202, accepted: 2,
			rejected: []Rejection{
				{Index: 1, ID: "e1", Field: "customer_id"},
				{Index: 3, ID: "", Field: "event"},
				{Index: 4, ID: "e4", Field: "time"},
				{Index: 5, ID: "e5", Field: "properties"},
			},
		},
		{
			name:     "ndjson line that is not JSON",
			req:      request{body: lines(event("e0", "c1"), "", `{"id":"e1",`, event("e2", "c1")), contentType: "application/x-ndjson"},
			wantCode: 202, accepted: 2,
			rejected: []Rejection{{Index: 1, Line: 3, ID: "", Field: "event"}},
		},
		{
			name:     "all invalid",
			req:      request{body: array(`{"id":"e1"}`, `{"type":"t","customer_id":"c"}`)},
			wantCode: 400, wantError: httpapi.CodeValidation,
			rejected: []Rejection{{Index: 0, ID: "e1", Field: "type"}, {Index: 1, ID: "", Field: "id"}},
		},
		{name: "single invalid", req: request{body: []byte(`{"id":"e1","type":"t"}`)}, wantCode: 400, wantError: httpapi.CodeValidation, rejected: []Rejection{{Index: 0, ID: "e1", Field: "customer_id"}}},
		{name: "empty body", req: request{}, wantCode: 400, wantError: httpapi.CodeValidation},
		{name: "blank body", req: request{body: []byte(" \n\t ")}, wantCode: 400, wantError: httpapi.CodeValidation},
		{name: "empty array", req: request{body: []byte("[]")}, wantCode: 400, wantError: httpapi.CodeValidation},
		{name: "blank ndjson", req: request{body: []byte("\n\n"), contentType: "application/x-ndjson"}, wantCode: 400, wantError: httpapi.CodeValidation},
		{name: "syntax error names position", req: request{body: []byte("[\n" + event("e1", "c1") + ",\n{\"id\": }]")}, wantCode: 400, wantError: httpapi.CodeBadRequest, wantMsg: "(line 3, column"},
		{name: "truncated array", req: request{body: []byte("[" + event("e1", "c1") + ",")}, wantCode: 400, wantError: httpapi.CodeBadRequest, wantMsg: "ends inside"},
		{name: "not an object or array", req: request{body: []byte(`"hello"`)}, wantCode: 400, wantError: httpapi.CodeBadRequest, wantMsg: "must start with"},
		{name: "ndjson sent as json", req: request{body: lines(event("e1", "c1"), event("e2", "c1"))}, wantCode: 400, wantError: httpapi.CodeBadRequest, wantMsg: "application/x-ndjson"},
		{name: "bad gzip", req: request{body: []byte(event("e1", "c1")), contentEncoding: "gzip"}, wantCode: 400, wantError: httpapi.CodeBadRequest, wantMsg: "gzip"},
		{name: "truncated gzip", req: request{body: gz(array(manyEvents(100)...))[:200], contentEncoding: "gzip"}, wantCode: 400, wantError: httpapi.CodeBadRequest, wantMsg: "gzip"},
		{name: "body too large", req: request{body: append(append([]byte("["), bytes.Repeat([]byte(" "), DefaultMaxBodyBytes)...), ']')}, wantCode: 413, wantError: httpapi.CodeTooLarge},
		{name: "gzip bomb", req: request{body: gz(append(append([]byte("["), bytes.Repeat([]byte(" "), 64<<20)...), ']')), contentEncoding: "gzip"}, wantCode: 413, wantError: httpapi.CodeTooLarge, wantMsg: "after decompression"},
		{name: "too many events", req: request{body: array(manyEvents(DefaultMaxEvents + 1)...)}, wantCode: 413, wantError: httpapi.CodeTooLarge, wantMsg: "more than 10000 events"},
		{name: "at the event limit", req: request{body: array(manyEvents(5)...)}, maxEvents: 5, wantCode: 202, accepted: 5},
		{name: "too many ndjson events", req: request{body: lines(manyEvents(6)...), contentType: "application/x-ndjson"}, maxEvents: 5, wantCode: 413, wantError: httpapi.CodeTooLarge},
		{name: "wrong content type", req: request{body: []byte(event("e1", "c1")), contentType: "text/plain"}, wantCode: 415, wantError: httpapi.CodeUnsupportedMedia},
		{name: "form content type", req: request{body: []byte("id=e1"), contentType: "application/x-www-form-urlencoded"}, wantCode: 415, wantError: httpapi.CodeUnsupportedMedia},
		{name: "unknown content encoding", req: request{body: []byte(event("e1", "c1")), contentEncoding: "br"}, wantCode: 415, wantError: httpapi.CodeUnsupportedMedia},
		{name: "missing key", req: request{body: []byte(event("e1", "c1")), auth: "-"}, wantCode: 401, wantError: httpapi.CodeUnauthorized},
		{name: "unknown key", req: request{body: []byte(event("e1", "c1")), auth: "Bearer not-a-key-0123456789"}, wantCode: 401, wantError: httpapi.CodeUnauthorized},
		{name: "bare key", req: request{body: []byte(event("e1", "c1")), auth: globexKey}, wantCode: 202, accepted: 1,
			check: func(t *testing.T, recs []schemas.Record) {
				if recs[0].OrgID != "globex" {
					t.Errorf("org = %q, want globex", recs[0].OrgID)
				}
			}},
		{
			name:     "body cannot pick another org",
			req:      request{body: []byte(`{"id":"e1","type":"t","customer_id":"c1","org_id":"globex","organization":"globex","properties":{"org_id":"globex"}}`)},
			wantCode: 202, accepted: 1,
			check: func(t *testing.T, recs []schemas.Record) {
				if recs[0].OrgID != "acme" {
					t.Errorf("org = %q, want acme (from the key)", recs[0].OrgID)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.maxEvents > 0 {
				cfg.MaxEvents = tt.maxEvents
			}
			pub := &recordingPublisher{}
			s := newTestService(t, cfg, Deps{Publisher: pub})
			before := time.Now().UTC()
			code, body := serve(s.Handler(), tt.req)
			if code != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", code, tt.wantCode, body)
			}
			published := pub.published()
			if len(published) != tt.accepted {
				t.Errorf("published %d records, want %d", len(published), tt.accepted)
			}
			if len(pub.calls) > 1 {
				t.Errorf("%d Publish calls for one request, want one", len(pub.calls))
			}
			var rejected []Rejection
			if tt.wantCode == 202 {
				var resp Response
				if err := json.Unmarshal(body, &resp); err != nil {
					t.Fatalf("response %s: %v", body, err)
				}
				if resp.Accepted != tt.accepted || resp.Rejected == nil {
					t.Errorf("response %s: want accepted %d and a rejected list", body, tt.accepted)
				}
				rejected = resp.Rejected
			} else {
				var eb errorBody
				if err := json.Unmarshal(body, &eb); err != nil {
					t.Fatalf("error response %s: %v", body, err)
				}
				if eb.Code != tt.wantError || !strings.Contains(eb.Message, tt.wantMsg) {
					t.Errorf("error %s, want code %s and message containing %q", body, tt.wantError, tt.wantMsg)
				}
				if len(eb.Details) > 0 && eb.Details[0] == '[' {
					if err := json.Unmarshal(eb.Details, &rejected); err != nil {
						t.Fatal(err)
					}
				}
			}
			checkRejections(t, rejected, tt.rejected)
			recs := checkRecords(t, published, before)
			if tt.check != nil && len(recs) > 0 {
				tt.check(t, recs)
			}
		})
	}
}

func TestPublishFailureIs503(t *testing.T) {
	pub := &recordingPublisher{err: errors.New("kafka: broker not available")}
	s := newTestService(t, testConfig(), Deps{Publisher: pub})
	code, body := serve(s.Handler(), request{body: array(event("e1", "c1"), `{"id":"bad"}`)})
	if code != http.StatusServiceUnavailable {
		t.Fatalf("status %d: %s", code, body)
	}
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatal(err)
	}
	var details Response
	if err := json.Unmarshal(eb.Details, &details); err != nil {
		t.Fatal(err)
	}
	if eb.Code != httpapi.CodeUnavailable || !strings.Contains(eb.Message, "may or may not have been recorded") || details.Accepted != 0 || len(details.Rejected) != 1 {
		t.Errorf("503 body %s", body)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	s := newTestService(t, testConfig(), Deps{Publisher: &recordingPublisher{}})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, EventsRoute, nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "POST" || !strings.Contains(rec.Body.String(), httpapi.CodeMethodNotAllowed) {
		t.Errorf("GET = %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
}

func TestOversizedEventIsRejectedAlone(t *testing.T) {
	cfg := testConfig()
	cfg.KafkaBatchBytes = minKafkaBatchBytes
	pub := &recordingPublisher{}
	s := newTestService(t, cfg, Deps{Publisher: pub})
	big := fmt.Sprintf(`{"id":"big","type":"t","customer_id":"c1","properties":{"blob":%q}}`, strings.Repeat("x", minKafkaBatchBytes))
	code, body := serve(s.Handler(), request{body: array(event("e1", "c1"), big)})
	if code != 202 || !strings.Contains(string(body), `"id":"big","field":"event"`) || len(pub.published()) != 1 {
		t.Errorf("status %d body %s, published %d", code, body, len(pub.published()))
	}
}

package ingest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Issue 6, defects 1 and 11 at ingest: a number of a million digits, a
// number outside the range of a reading, properties nested too deep and
// member names that differ only by case are refused on every route, with
// the event (index and id) and the field named.

func TestHugeNumberIsRejectedNamingTheField(t *testing.T) {
	million := strings.Repeat("7", 1_000_000)
	big := `{"id":"big","type":"t","customer_id":"c1","properties":{"usage":{"n":` + million + `}}}`
	pub := &recordingPublisher{}
	s := newTestService(t, testConfig(), Deps{Publisher: pub})

	code, body := serve(s.Handler(), request{body: array(event("e1", "c1"), big)})
	if code != 202 || len(pub.published()) != 1 {
		t.Fatalf("status %d, published %d: %.300s", code, len(pub.published()), body)
	}
	var resp Response
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	checkRejections(t, resp.Rejected, []Rejection{{Index: 1, ID: "big", Field: "properties.usage.n"}})
	if !strings.Contains(resp.Rejected[0].Error, "1000000 characters long, at most 100") || len(body) > 1000 {
		t.Errorf("rejection %.300s", body)
	}

	// Alone, it is a 400 that names it the same way.
	code, body = serve(s.Handler(), request{body: []byte(big)})
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil || code != 400 {
		t.Fatalf("status %d: %.300s", code, body)
	}
	var rejected []Rejection
	if err := json.Unmarshal(eb.Details, &rejected); err != nil {
		t.Fatal(err)
	}
	checkRejections(t, rejected, []Rejection{{Index: 0, ID: "big", Field: "properties.usage.n"}})
}

func TestEventLimitsOnTheNativeRoute(t *testing.T) {
	tests := []struct {
		name, event, field string
	}{
		{"out of range", `{"id":"e","type":"t","customer_id":"c","properties":{"v":1e26}}`, "properties.v"},
		{"too deep", `{"id":"e","type":"t","customer_id":"c","properties":{"a":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}}`, "properties.a" + strings.Repeat("[0]", 31)},
		{"id and ID", `{"id":"e","ID":"f","type":"t","customer_id":"c"}`, "ID"},
		{"id twice", `{"id":"e","type":"t","customer_id":"c","id":"f"}`, "id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &recordingPublisher{}
			s := newTestService(t, testConfig(), Deps{Publisher: pub})
			code, body := serve(s.Handler(), request{body: lines(event("ok", "c1"), tt.event), contentType: "application/x-ndjson"})
			var resp Response
			if err := json.Unmarshal(body, &resp); err != nil || code != 202 {
				t.Fatalf("status %d: %s", code, body)
			}
			checkRejections(t, resp.Rejected, []Rejection{{Index: 1, Line: 2, ID: "e", Field: tt.field}})
			_, metrics := gather(t, s)
			if want := `tally_ingest_events_rejected_total{reason="invalid_other"} 1`; tt.field[0] >= 'a' && tt.field[:2] != "id" && strings.Contains(metrics, want) {
				t.Errorf("a property's problem is counted as invalid_other:\n%s", metrics)
			}
		})
	}
}

// gather returns the service's /metrics text.
func gather(t *testing.T, s *Service) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return rec.Code, rec.Body.String()
}

func TestEventLimitsOnLagoRoutes(t *testing.T) {
	tests := []struct {
		name, path, body, want string
		code                   int
	}{
		{"case variant of transaction_id", EventsRoute,
			`{"event":{"transaction_id":"t1","Transaction_ID":"t2","external_customer_id":"c","code":"api_calls"}}`,
			`"error_details":{"Transaction_ID":["is not a member name`, 422},
		{"transaction_id twice", LagoBatchRoute,
			`{"events":[{"transaction_id":"t1","external_customer_id":"c","code":"api_calls","transaction_id":"t2"}]}`,
			`"error_details":{"0":{"transaction_id":["appears more than once`, 422},
		{"events twice", LagoBatchRoute,
			`{"events":[{"transaction_id":"t1","external_customer_id":"c","code":"api_calls"}],"events":[]}`,
			`events: appears more than once`, 400},
		{"a property out of range", EventsRoute,
			`{"event":{"transaction_id":"t1","external_customer_id":"c","code":"api_calls","properties":{"v":-1e30}}}`,
			`"error_details":{"properties.v":["-1e30 is out of range`, 422},
		{"a timestamp of a million digits", EventsRoute,
			`{"event":{"transaction_id":"t1","external_customer_id":"c","code":"api_calls","timestamp":` + strings.Repeat("1", 1_000_000) + `}}`,
			`"error_details":{"timestamp":["invalid_format"]}`, 422},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &recordingPublisher{}
			s := newTestService(t, testConfig(), Deps{Publisher: pub, Catalog: newLagoCatalog()})
			s.events.now = func() time.Time { return lagoNow }
			req := httptest.NewRequest(http.MethodPost, tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+acmeKey)
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.want) || len(pub.published()) != 0 {
				t.Errorf("status %d, published %d: %.400s\nwant %d with %s", rec.Code, len(pub.published()), rec.Body, tt.code, tt.want)
			}
		})
	}
}

func TestLagoTimestampLength(t *testing.T) {
	_, err := lagoTimestamp(json.RawMessage(strings.Repeat("1", 1_000_000)))
	if err == nil || !strings.Contains(err.Error(), "characters long") {
		t.Errorf("lagoTimestamp of a million digits: %.200v; want a refusal of its length before it is parsed", err)
	}
}

func TestEventLimitsOnPriceOpsRoute(t *testing.T) {
	tests := []struct {
		name, body, field string
	}{
		{"quantity twice", record("r1", `{"resource": "API", "quantity": 1, "quantity": 1000}`), "usage_data[0].quantity"},
		{"usage_record_id twice", `{"usage_record_id": "r1", "customer_id": "1008", "usage_record_id": "r2", "usage_data": [{"resource": "API", "quantity": 1}]}`, "usage_record_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &recordingPublisher{}
			h := newPriceOpsHandler(newPriceOpsCatalog(t), pub)
			code, _, body := usageRequest{body: tt.body}.send(priceOpsServer(t, h))
			if code != 400 || !strings.Contains(string(body), `"field":"`+tt.field+`","message":"appears more than once`) || len(pub.published()) != 0 {
				t.Errorf("status %d, published %d: %s", code, len(pub.published()), body)
			}
		})
	}
}

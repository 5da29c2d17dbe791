package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/schemas"
)

// lagoCatalog is a Catalog of subscriptions by organization and id. The
// catalog's real store (ClickHouse) is exercised by the end-to-end tests
// in cmd/tally; here it only has to answer lookups.
type lagoCatalog struct {
	subs    map[string]schemas.Subscription // "org/external_id"
	err     error                           // answered to every lookup when set
	lookups int
}

func (c *lagoCatalog) Meters(context.Context, string) ([]schemas.Meter, error) {
	return nil, nil
}

func (c *lagoCatalog) Subscription(_ context.Context, org, id string) (schemas.Subscription, error) {
	c.lookups++
	if c.err != nil {
		return schemas.Subscription{}, c.err
	}
	s, ok := c.subs[org+"/"+id]
	if !ok {
		return schemas.Subscription{}, fmt.Errorf("subscription %q: %w", id, ErrNotFound)
	}
	return s, nil
}

func newLagoCatalog() *lagoCatalog {
	return &lagoCatalog{subs: map[string]schemas.Subscription{
		"acme/sub-1":   {ExternalID: "sub-1", ExternalCustomerID: "cust-1", PlanCode: "p"},
		"acme/sub-1b":  {ExternalID: "sub-1b", ExternalCustomerID: "cust-1", PlanCode: "q"},
		"globex/sub-g": {ExternalID: "sub-g", ExternalCustomerID: "cust-g", PlanCode: "p"},
	}}
}

// lagoNow is the fixed arrival time of the Lago handler tests; events
// are at 1690000000 (2023-07-22T04:26:40Z), within the default age.
var lagoNow = time.Date(2023, 7, 25, 0, 0, 0, 0, time.UTC)

func lagoEv(id, customer, sub, ts string) string {
	var fields []string
	fields = append(fields, fmt.Sprintf(`"transaction_id":%q,"code":"api_calls"`, id))
	if customer != "" {
		fields = append(fields, fmt.Sprintf(`"external_customer_id":%q`, customer))
	}
	if sub != "" {
		fields = append(fields, fmt.Sprintf(`"external_subscription_id":%q`, sub))
	}
	if ts != "" {
		fields = append(fields, `"timestamp":`+ts)
	}
	fields = append(fields, `"properties":{"tokens":"2.5"}`)
	return "{" + strings.Join(fields, ",") + "}"
}

func lagoSingle(ev string) []byte { return []byte(`{"event":` + ev + `}`) }
func lagoBatchBody(evs ...string) []byte {
	return []byte(`{"events":[` + strings.Join(evs, ",") + `]}`)
}

func TestLagoEvents(t *testing.T) {
	tests := []struct {
		name      string
		path      string // EventsRoute when empty
		body      []byte
		auth      string
		catalog   func() Catalog
		pubErr    error
		wantCode  int
		wantBody  []string // substrings of the response
		published []string // "org/customer/id@time" of every record
	}{
		{
			name: "customer with integer timestamp", body: lagoSingle(lagoEv("t1", "cust-9", "", "1690000000")), wantCode: 200,
			wantBody: []string{
				`{"event":{"lago_id":"` + lagoEventID("acme", "cust-9", "t1") + `","transaction_id":"t1","lago_customer_id":null,"code":"api_calls",` +
					`"timestamp":"2023-07-22T04:26:40.000Z","precise_total_amount_cents":null,"properties":{"tokens":"2.5"},"lago_subscription_id":null,` +
					`"external_subscription_id":null,"external_customer_id":"cust-9","created_at":"2023-07-25T00:00:00Z"}}`,
			},
			published: []string{"acme/cust-9/t1@2023-07-22T04:26:40Z"},
		},
		{
			name: "subscription resolves the customer", body: lagoSingle(lagoEv("t1", "", "sub-1", `"1690000000.5"`)), wantCode: 200,
			wantBody:  []string{`"timestamp":"2023-07-22T04:26:40.500Z"`, `"external_subscription_id":"sub-1","external_customer_id":"cust-1"`},
			published: []string{"acme/cust-1/t1@2023-07-22T04:26:40.5Z"},
		},
		{
			name: "absent timestamp is the arrival time", body: lagoSingle(lagoEv("t1", "cust-9", "", "")), wantCode: 200,
			wantBody: []string{`"timestamp":"2023-07-25T00:00:00.000Z"`}, published: []string{"acme/cust-9/t1@2023-07-25T00:00:00Z"},
		},
		{
			name: "customer and subscription that agree", body: lagoSingle(lagoEv("t1", "cust-1", "sub-1", "1690000000")), wantCode: 200,
			published: []string{"acme/cust-1/t1@2023-07-22T04:26:40Z"},
		},
		{
			name: "customer and subscription that disagree", body: lagoSingle(lagoEv("t1", "cust-2", "sub-1", "1690000000")), wantCode: 422,
			wantBody: []string{`{"status":422,"error":"Unprocessable Entity","code":"validation_errors","error_details":{"external_customer_id":["is \"cust-2\", but subscription \"sub-1\" is customer \"cust-1\"'s"]}}`},
		},
		{
			name: "unknown subscription", body: lagoSingle(lagoEv("t1", "", "sub-x", "1690000000")), wantCode: 422,
			wantBody: []string{`"error_details":{"external_subscription_id":["no subscription \"sub-x\"`},
		},
		{
			name: "another organization's subscription", body: lagoSingle(lagoEv("t1", "", "sub-g", "1690000000")), wantCode: 422,
			wantBody: []string{`"external_subscription_id":["no subscription \"sub-g\"`},
		},
		{
			name: "unknown subscription with a customer is metered for the customer", body: lagoSingle(lagoEv("t1", "cust-9", "sub-x", "1690000000")), wantCode: 200,
			wantBody: []string{`"external_subscription_id":"sub-x","external_customer_id":"cust-9"`}, published: []string{"acme/cust-9/t1@2023-07-22T04:26:40Z"},
		},
		{
			name: "subscription without a catalog", body: lagoSingle(lagoEv("t1", "", "sub-1", "1690000000")), catalog: func() Catalog { return nil }, wantCode: 503,
			wantBody: []string{`"status":503,"error":"Service Unavailable","code":"catalog_unavailable"`},
		},
		{
			name: "customer without a catalog", body: lagoSingle(lagoEv("t1", "cust-9", "", "1690000000")), catalog: func() Catalog { return nil }, wantCode: 200,
			published: []string{"acme/cust-9/t1@2023-07-22T04:26:40Z"},
		},
		{
			name: "catalog down", body: lagoSingle(lagoEv("t1", "", "sub-1", "1690000000")), catalog: func() Catalog { return &lagoCatalog{err: errors.New("clickhouse: connection refused")} },
			wantCode: 503, wantBody: []string{`"code":"catalog_unavailable"`},
		},
		{
			name: "missing fields", body: lagoSingle(`{"properties":{}}`), wantCode: 422,
			wantBody: []string{`"error_details":{"code":["value_is_mandatory"],"external_subscription_id":["value_is_mandatory"],"transaction_id":["value_is_mandatory"]}`},
		},
		{
			name: "invalid timestamp", body: lagoSingle(lagoEv("t1", "cust-9", "", `"yesterday"`)), wantCode: 422,
			wantBody: []string{`"error_details":{"timestamp":["invalid_format"]}`},
		},
		{
			name: "timestamp older than the events may be", body: lagoSingle(lagoEv("t1", "cust-9", "", "1000000000")), wantCode: 422,
			wantBody: []string{`"error_details":{"timestamp":["`},
		},
		{
			name: "native rules speak Lago's field names", body: lagoSingle(`{"transaction_id":"t1","external_customer_id":"c","code":"` + strings.Repeat("x", schemas.MaxEventTypeLen+1) + `"}`), wantCode: 422,
			wantBody: []string{`"error_details":{"code":["is 129 characters long, at most 128 allowed"]}`},
		},
		{
			name: "properties not an object", body: lagoSingle(`{"transaction_id":"t1","external_customer_id":"c","code":"api_calls","properties":[1]}`), wantCode: 422,
			wantBody: []string{`"error_details":{"properties":["must be a JSON object"]}`},
		},
		{
			name: "envelope without an event object", path: LagoBatchRoute, body: []byte(`{"events":"t1"}`), wantCode: 400,
			wantBody: []string{`{"status":400,"error":"BadRequest: events must be an array of event objects"}`},
		},
		{
			name: "batch", path: LagoBatchRoute, body: lagoBatchBody(lagoEv("t1", "cust-9", "", "1690000000"), lagoEv("t2", "", "sub-1", "1690000001"), lagoEv("t3", "", "sub-1", "1690000002")),
			wantCode:  200,
			wantBody:  []string{`{"events":[{"lago_id":`, `"transaction_id":"t1"`, `"transaction_id":"t2"`, `"transaction_id":"t3"`},
			published: []string{"acme/cust-9/t1@2023-07-22T04:26:40Z", "acme/cust-1/t2@2023-07-22T04:26:41Z", "acme/cust-1/t3@2023-07-22T04:26:42Z"},
		},
		{
			name: "batch with invalid events is refused whole", path: LagoBatchRoute,
			body:     lagoBatchBody(lagoEv("t1", "cust-9", "", "1690000000"), lagoEv("t2", "", "", "1690000000"), lagoEv("t3", "cust-9", "", `"x"`)),
			wantCode: 422,
			wantBody: []string{`"error_details":{"1":{"external_subscription_id":["value_is_mandatory"]},"2":{"timestamp":["invalid_format"]}}`},
		},
		{
			name: "batch of 101", path: LagoBatchRoute, body: lagoBatchBody(lagoRepeat(lagoEv("t", "c", "", "1690000000"), LagoMaxBatch+1)...), wantCode: 422,
			wantBody: []string{`{"status":422,"error":"Unprocessable Entity","code":"validation_errors","error_details":{"events":["too_many_events"]}}`},
		},
		{
			name: "batch not JSON", path: LagoBatchRoute, body: []byte(`{"events":[`), wantCode: 400,
			wantBody: []string{`"error":"BadRequest: the body is not a JSON object`},
		},
		{
			name: "Kafka does not acknowledge", body: lagoSingle(lagoEv("t1", "cust-9", "", "1690000000")), pubErr: errors.New("kafka: broker not available"), wantCode: 503,
			wantBody: []string{`"status":503,"error":"Service Unavailable","code":"unavailable"`, "same transaction_id and otherwise unchanged"},
		},
		{
			name: "bare key of another organization", body: lagoSingle(lagoEv("t1", "", "sub-g", "1690000000")), auth: globexKey, wantCode: 200,
			published: []string{"globex/cust-g/t1@2023-07-22T04:26:40Z"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &recordingPublisher{err: tt.pubErr}
			var cat Catalog = newLagoCatalog()
			if tt.catalog != nil {
				cat = tt.catalog()
			}
			keys := testKeys(t)
			s := newTestService(t, testConfig(), Deps{Publisher: pub, Catalog: cat, Keys: keys})
			s.events.now = func() time.Time { return lagoNow }
			path := lagoOr(tt.path, EventsRoute)
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(tt.body)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", lagoOr(tt.auth, "Bearer "+acmeKey))
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantCode, rec.Body)
			}
			for _, want := range tt.wantBody {
				if !strings.Contains(rec.Body.String(), want) {
					t.Errorf("body %s\nlacks %s", rec.Body, want)
				}
			}
			if rec.Code == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if tt.pubErr != nil {
				return
			}
			var got []string
			for _, rec := range checkRecords(t, pub.published(), lagoNow) {
				got = append(got, fmt.Sprintf("%s/%s/%s@%s", rec.OrgID, rec.Event.CustomerID, rec.Event.ID, rec.Event.Time.Format(time.RFC3339Nano)))
			}
			if strings.Join(got, " ") != strings.Join(tt.published, " ") {
				t.Errorf("published %q, want %q", got, tt.published)
			}
		})
	}
}

// TestLagoBatchLooksUpEachSubscriptionOnce keeps a batch of a hundred
// events of one subscription at one catalog read.
func TestLagoBatchLooksUpEachSubscriptionOnce(t *testing.T) {
	cat := newLagoCatalog()
	keys := testKeys(t)
	s := newTestService(t, testConfig(), Deps{Publisher: &recordingPublisher{}, Catalog: cat, Keys: keys})
	var evs []string
	for i := range LagoMaxBatch {
		evs = append(evs, lagoEv(fmt.Sprintf("t%d", i), "", "sub-1", ""))
	}
	req := httptest.NewRequest(http.MethodPost, LagoBatchRoute, strings.NewReader(string(lagoBatchBody(evs...))))
	req.Header.Set("Authorization", "Bearer "+acmeKey)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 || cat.lookups != 1 {
		t.Errorf("status %d, %d lookups: %s", rec.Code, cat.lookups, rec.Body)
	}
	var resp struct {
		Events []LagoEvent `json:"events"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.Events) != LagoMaxBatch || resp.Events[99].TransactionID != "t99" {
		t.Errorf("response %d events (%v)", len(resp.Events), err)
	}
}

func TestLagoBatchRequestErrors(t *testing.T) {
	keys := testKeys(t)
	cfg := testConfig()
	cfg.MaxBodyBytes = 1 << 10
	s := newTestService(t, cfg, Deps{Publisher: &recordingPublisher{}, Keys: keys})
	tests := []struct {
		name, contentType, encoding string
		body                        []byte
		wantCode                    int
		wantBody                    string
	}{
		{name: "gzip", encoding: "gzip", body: gz(lagoBatchBody(lagoEv("t1", "c", "", ""))), wantCode: 200, wantBody: `"transaction_id":"t1"`},
		{name: "ndjson", contentType: "application/x-ndjson", body: lagoBatchBody(lagoEv("t1", "c", "", "")), wantCode: 415, wantBody: `"status":415`},
		{name: "too large", body: lagoBatchBody(lagoRepeat(lagoEv("t1", "c", "", ""), 20)...), wantCode: 413, wantBody: `"status":413,"error":"Request Entity Too Large","code":"payload_too_large"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, LagoBatchRoute, strings.NewReader(string(tt.body)))
			req.Header.Set("Authorization", "Bearer "+acmeKey)
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if tt.encoding != "" {
				req.Header.Set("Content-Encoding", tt.encoding)
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.wantCode || !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("status %d body %s, want %d with %s", rec.Code, rec.Body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

func lagoRepeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func lagoOr(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}

// TestLagoKafkaFailureBesideARejectedEvent answers 503 when Kafka fails
// a batch that also holds an event too large for a Kafka record: the
// valid events were not acknowledged, and a 422 would make the client
// drop them instead of retrying.
func TestLagoKafkaFailureBesideARejectedEvent(t *testing.T) {
	cfg := testConfig()
	cfg.KafkaBatchBytes = minKafkaBatchBytes
	pub := &recordingPublisher{err: errors.New("kafka: broker not available")}
	s := newTestService(t, cfg, Deps{Publisher: pub, Catalog: newLagoCatalog(), Keys: testKeys(t)})
	big := fmt.Sprintf(`{"transaction_id":"big","external_customer_id":"c","code":"api_calls","properties":{"blob":%q}}`,
		strings.Repeat("x", minKafkaBatchBytes))
	req := httptest.NewRequest(http.MethodPost, LagoBatchRoute, strings.NewReader(string(lagoBatchBody(lagoEv("t1", "c", "", ""), big))))
	req.Header.Set("Authorization", "Bearer "+acmeKey)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" ||
		!strings.Contains(rec.Body.String(), `"code":"unavailable"`) {
		t.Errorf("status %d (Retry-After %q): %s; want 503 so that t1 is retried", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if len(pub.published()) != 1 {
		t.Errorf("%d records handed to Kafka, want t1 only", len(pub.published()))
	}

	// Once Kafka acknowledges, the retry is 422 naming the large event
	// alone; t1 is accepted (and deduplicated if the failed call wrote it).
	pub.err = nil
	req = httptest.NewRequest(http.MethodPost, LagoBatchRoute, strings.NewReader(string(lagoBatchBody(lagoEv("t1", "c", "", ""), big))))
	req.Header.Set("Authorization", "Bearer "+acmeKey)
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `"error_details":{"1":{"event":`) {
		t.Errorf("retry: status %d: %s, want 422 naming event 1", rec.Code, rec.Body)
	}
}

// TestLagoTransactionIDIsPerCustomer documents the identity of a Lago
// event: (organization, customer, transaction_id), the native event's
// (org, customer_id, id). Two events with one transaction_id on two
// subscriptions of one customer are one event: both are answered 200 with
// the same lago_id and produced with the same identity, and the
// aggregator keeps the first (cmd/tally's end-to-end test shows it).
func TestLagoTransactionIDIsPerCustomer(t *testing.T) {
	pub := &recordingPublisher{}
	s := newTestService(t, testConfig(), Deps{Publisher: pub, Catalog: newLagoCatalog(), Keys: testKeys(t)})
	s.events.now = func() time.Time { return lagoNow }
	req := httptest.NewRequest(http.MethodPost, LagoBatchRoute,
		strings.NewReader(string(lagoBatchBody(lagoEv("t1", "", "sub-1", "1690000000"), lagoEv("t1", "", "sub-1b", "1690000001")))))
	req.Header.Set("Authorization", "Bearer "+acmeKey)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	var resp struct {
		Events []LagoEvent `json:"events"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &resp) != nil || len(resp.Events) != 2 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if a, b := resp.Events[0], resp.Events[1]; a.LagoID != b.LagoID || a.LagoID != lagoEventID("acme", "cust-1", "t1") ||
		*a.ExternalSubscriptionID != "sub-1" || *b.ExternalSubscriptionID != "sub-1b" {
		t.Errorf("echoed %+v and %+v; want one lago_id, each with its subscription", a, b)
	}
	var got []string
	for _, r := range checkRecords(t, pub.published(), lagoNow) {
		got = append(got, r.OrgID+"/"+r.Event.CustomerID+"/"+r.Event.ID)
	}
	if strings.Join(got, " ") != "acme/cust-1/t1 acme/cust-1/t1" {
		t.Errorf("published %q, want one identity twice", got)
	}
}

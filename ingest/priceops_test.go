package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

// priceOpsCatalog is a fixed set of meters per organization. It stands in
// for the ClickHouse catalog in the handler's tests as recordingPublisher
// stands in for Kafka; cmd/tally's contract test runs the real ones.
type priceOpsCatalog struct {
	meters  map[string]map[string]schemas.Meter // org -> key -> meter
	err     error                               // every lookup fails with it
	lookups atomic.Int64                        // calls of Meters
}

func (c *priceOpsCatalog) Meters(_ context.Context, org string) ([]schemas.Meter, error) {
	c.lookups.Add(1)
	if c.err != nil {
		return nil, c.err
	}
	var out []schemas.Meter
	for _, key := range slices.Sorted(maps.Keys(c.meters[org])) {
		out = append(out, c.meters[org][key])
	}
	return out, nil
}

func (c *priceOpsCatalog) Subscription(context.Context, string, string) (schemas.Subscription, error) {
	return schemas.Subscription{}, ErrNotFound
}

func testMeter(t testing.TB, def string) schemas.Meter {
	t.Helper()
	m, err := schemas.ParseMeter([]byte(def))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newPriceOpsCatalog holds acme's meters of every kind and globex meters
// that acme must not reach.
func newPriceOpsCatalog(t testing.TB) *priceOpsCatalog {
	acme := map[string]schemas.Meter{}
	for _, def := range []string{
		`{"key": "API", "event_type": "api_request", "aggregation": "SUM", "value_property": "$.quantity"}`,
		`{"key": "tokens", "event_type": "llm", "aggregation": "SUM", "value_property": "$.usage.tokens", "group_by": {"model": "$.model"}}`,
		`{"key": "calls", "event_type": "call", "aggregation": "COUNT"}`,
		`{"key": "users", "event_type": "login", "aggregation": "UNIQUE_COUNT", "value_property": "$.user"}`,
		`{"key": "peak", "event_type": "gauge", "aggregation": "MAX", "value_property": "$.quantity"}`,
		`{"key": "pro_only", "event_type": "api_request", "aggregation": "SUM", "value_property": "$.quantity", "filter": {"tier": {"eq": "pro"}}}`,
		`{"key": "positive", "event_type": "transfer", "aggregation": "SUM", "value_property": "$.quantity", "filter": {"$.quantity": {"gt": 0}}}`,
	} {
		m := testMeter(t, def)
		acme[m.Key] = m
	}
	return &priceOpsCatalog{meters: map[string]map[string]schemas.Meter{
		"acme": acme,
		"globex": {
			"secret": testMeter(t, `{"key": "secret", "event_type": "secret", "aggregation": "SUM", "value_property": "$.quantity"}`),
			// Events of acme's type api_request are acme's: this meter
			// never sees them.
			"g_requests": testMeter(t, `{"key": "g_requests", "event_type": "api_request", "aggregation": "COUNT"}`),
		},
	}}
}

// priceOpsServer serves the usage route of h behind authentication, as
// the ingest service does.
func priceOpsServer(t testing.TB, h *handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST "+PriceOpsUsageRoute, httpapi.Authenticate(testKeys(t), http.HandlerFunc(h.priceOpsUsage)))
	return mux
}

func newPriceOpsHandler(cat Catalog, pub Publisher) *handler {
	return &handler{cfg: testConfig(), publisher: pub, catalog: cat, metrics: newMetrics(prometheus.NewRegistry()),
		logger: slog.New(slog.DiscardHandler), now: time.Now}
}

// usageRequest describes one POST of a usage record.
type usageRequest struct {
	org         string // ORG_ID in the path; "" is acme
	body        string
	auth        string // Authorization; "" is acme's bare key
	contentType string
}

func (r usageRequest) send(h http.Handler) (int, http.Header, []byte) {
	org := r.org
	if org == "" {
		org = "acme"
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/integration/organization/"+org+"/usage", strings.NewReader(r.body))
	auth := r.auth
	if auth == "" {
		auth = acmeKey
	}
	req.Header.Set("Authorization", auth)
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Header(), rec.Body.Bytes()
}

// seedUsageRecord is the seed document's usage record, without its
// comments (which are not JSON).
const seedUsageRecord = `{
    "usage_record_id" : "123457",
    "customer_id" : "1008",
    "usage_data" : [
        {
            "resource" : "API",
            "quantity" : 5000
        }
    ]
}`

// record builds a usage record of customer 1008 with the given items.
func record(id string, items ...string) string {
	return fmt.Sprintf(`{"usage_record_id": %q, "customer_id": "1008", "usage_data": [%s]}`, id, strings.Join(items, ","))
}

func item(resource, quantity string) string {
	return fmt.Sprintf(`{"resource": %q, "quantity": %s}`, resource, quantity)
}

// wantEvent is what one published record must hold.
type wantEvent struct{ id, typ, props string }

func TestPriceOpsUsage(t *testing.T) {
	manyItems := make([]string, MaxUsageItems+1)
	for i := range manyItems {
		manyItems[i] = item("API", "1")
	}
	id124 := strings.Repeat("r", 124) // + ":API" is 128 characters
	tests := []struct {
		name       string
		req        usageRequest
		meters     []string // acme's meters besides newPriceOpsCatalog's
		catalogErr error
		noCatalog  bool
		publishErr error
		wantCode   int
		wantError  string   // httpapi error code
		wantFields []string // details' fields, in order
		wantMsg    string   // substring of the message
		events     []wantEvent
	}{
		{name: "seed example", req: usageRequest{body: seedUsageRecord}, wantCode: 202,
			events: []wantEvent{{"123457:API", "@API", `{"quantity":5000}`}}},
		{name: "bearer key and JSON content type", req: usageRequest{body: seedUsageRecord, auth: "Bearer " + acmeKey, contentType: "application/json; charset=utf-8"},
			wantCode: 202, events: []wantEvent{{"123457:API", "@API", `{"quantity":5000}`}}},
		{
			name: "every kind of meter",
			req: usageRequest{body: record("r1", item("API", "0.25"), item("tokens", "12.5"), item("calls", "1.0"),
				item("users", "42"), item("peak", "-3"), item("positive", "7e2"))},
			wantCode: 202,
			events: []wantEvent{
				{"r1:API", "@API", `{"quantity":0.25}`},
				{"r1:tokens", "@tokens", `{"usage":{"tokens":12.5}}`},
				{"r1:calls", "@calls", `{}`},
				{"r1:users", "@users", `{"user":42}`},
				{"r1:peak", "@peak", `{"quantity":-3}`},
				{"r1:positive", "@positive", `{"quantity":7e2}`},
			},
		},
		{name: "id with a colon", req: usageRequest{body: record("2026-03:day:1", item("API", "1"))}, wantCode: 202,
			events: []wantEvent{{"2026-03:day:1:API", "@API", `{"quantity":1}`}}},
		{name: "longest usage_record_id", req: usageRequest{body: record(id124, item("API", "1"))}, wantCode: 202,
			events: []wantEvent{{id124 + ":API", "@API", `{"quantity":1}`}}},

		// Organizations.
		{name: "another organization's ORG_ID", req: usageRequest{org: "globex", body: seedUsageRecord}, wantCode: 403, wantError: httpapi.CodeForbidden},
		{name: "unknown ORG_ID", req: usageRequest{org: "initech", body: seedUsageRecord}, wantCode: 403, wantError: httpapi.CodeForbidden},
		{name: "globex key on acme", req: usageRequest{org: "acme", auth: globexKey, body: seedUsageRecord}, wantCode: 403, wantError: httpapi.CodeForbidden},
		{name: "another organization's meter is unknown", req: usageRequest{body: record("r1", item("secret", "1"))},
			wantCode: 400, wantError: httpapi.CodeValidation, wantFields: []string{"usage_data[0].resource"}, wantMsg: `no meter has the key "secret"`},
		{name: "no key", req: usageRequest{body: seedUsageRecord, auth: "Bearer nope-nope-nope-nope"}, wantCode: 401, wantError: httpapi.CodeUnauthorized},

		// The record's fields.
		{name: "empty object", req: usageRequest{body: `{}`}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_record_id", "customer_id", "usage_data"}},
		{name: "nulls", req: usageRequest{body: `{"usage_record_id": null, "customer_id": null, "usage_data": null}`}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_record_id", "customer_id", "usage_data"}},
		{name: "wrong types", req: usageRequest{body: `{"usage_record_id": 123457, "customer_id": "", "usage_data": {"resource": "API"}}`}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_record_id", "customer_id", "usage_data"}, wantMsg: "usage_record_id: must be a string"},
		{name: "unknown fields", req: usageRequest{body: `{"usage_record_id": "r1", "customer_id": "c", "timestamp": 1, "usage_data": [{"resource": "API", "quantity": 1, "unit": "calls"}]}`},
			wantCode: 400, wantError: httpapi.CodeValidation, wantFields: []string{"timestamp", "usage_data[0].unit"}},
		{name: "customer_id too long", req: usageRequest{body: `{"usage_record_id": "r1", "customer_id": "` + strings.Repeat("c", schemas.MaxCustomerIDLen+1) + `", "usage_data": [` + item("API", "1") + `]}`},
			wantCode: 400, wantError: httpapi.CodeValidation, wantFields: []string{"customer_id"}},
		{name: "invalid UTF-8 in customer_id", req: usageRequest{body: "{\"usage_record_id\": \"r1\", \"customer_id\": \"c\xff\", \"usage_data\": [" + item("API", "1") + "]}"},
			wantCode: 400, wantError: httpapi.CodeValidation, wantFields: []string{"customer_id"}},
		{name: "usage_record_id too long with the resource", req: usageRequest{body: record(id124+"r", item("API", "1"))},
			wantCode: 400, wantError: httpapi.CodeValidation, wantFields: []string{"usage_record_id"}, wantMsg: "129 characters"},
		{name: "usage_record_id too long", req: usageRequest{body: record(strings.Repeat("r", schemas.MaxEventIDLen+1), item("API", "1"))},
			wantCode: 400, wantError: httpapi.CodeValidation, wantFields: []string{"usage_record_id"}},
		{name: "no items", req: usageRequest{body: record("r1")}, wantCode: 400, wantError: httpapi.CodeValidation, wantFields: []string{"usage_data"}},
		{name: "too many items", req: usageRequest{body: record("r1", manyItems...)}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_data"}, wantMsg: "at most 100"},

		// The items.
		{name: "item not an object", req: usageRequest{body: record("r1", `"API"`, item("API", "1"))}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_data[0]"}},
		{name: "item without fields", req: usageRequest{body: record("r1", `{}`)}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_data[0].resource", "usage_data[0].quantity"}},
		{name: "quantity a numeric string", req: usageRequest{body: record("r1", item("API", `"5000"`))}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_data[0].quantity"}, wantMsg: "not the string"},
		{name: "quantity a boolean", req: usageRequest{body: record("r1", item("API", `true`))}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_data[0].quantity"}, wantMsg: "not the boolean"},
		{name: "quantity null", req: usageRequest{body: record("r1", item("API", `null`))}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_data[0].quantity"}, wantMsg: "is required"},
		{name: "quantity an array", req: usageRequest{body: record("r1", item("API", `[1]`))}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_data[0].quantity"}},
		{name: "quantity a huge exponent", req: usageRequest{body: record("r1", item("API", `1e1000000000`))}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_data[0].quantity"}, wantMsg: "out of range"},
		{name: "quantity beyond the meter's range", req: usageRequest{body: record("r1", item("API", `1e26`))}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_data[0].quantity"}, wantMsg: "value_out_of_range"},
		{name: "quantity too precise", req: usageRequest{body: record("r1", item("API", `0.0000000000001`))}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_data[0].quantity"}, wantMsg: "value_too_precise"},
		{name: "resource not a string", req: usageRequest{body: record("r1", `{"resource": 7, "quantity": 1}`)}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_data[0].resource"}},
		{name: "resource not a meter key", req: usageRequest{body: record("r1", item("API calls", "1"))}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_data[0].resource"}, wantMsg: "not a meter key"},
		{name: "unknown resource", req: usageRequest{body: record("r1", item("API", "1"), item("nope", "1"))}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_data[1].resource"}},
		{name: "duplicate resource", req: usageRequest{body: record("r1", item("API", "1"), item("tokens", "1"), item("API", "2"))}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_data[2].resource"}, wantMsg: "repeats usage_data[0].resource"},
		{name: "count meter with a quantity other than 1", req: usageRequest{body: record("r1", item("calls", "5"))}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_data[0].quantity"}, wantMsg: "counts events"},
		{name: "meter filter a record cannot pass", req: usageRequest{body: record("r1", item("pro_only", "5"))}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_data[0].resource"}, wantMsg: "filter"},
		{name: "meter filter the quantity fails", req: usageRequest{body: record("r1", item("positive", "0"))}, wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_data[0].resource"}, wantMsg: "filter"},

		// Other meters of the resource's event_type never see an item's
		// event, which is addressed to the resource's meter.
		{name: "a COUNT meter of the same event_type", req: usageRequest{body: seedUsageRecord},
			meters:   []string{`{"key": "requests", "event_type": "api_request", "aggregation": "COUNT"}`},
			wantCode: 202, events: []wantEvent{{"123457:API", "@API", `{"quantity":5000}`}}},
		{name: "a meter of the same event_type that would dead-letter the item", req: usageRequest{body: seedUsageRecord},
			meters:   []string{`{"key": "bytes", "event_type": "api_request", "aggregation": "SUM", "value_property": "$.bytes"}`},
			wantCode: 202, events: []wantEvent{{"123457:API", "@API", `{"quantity":5000}`}}},
		{name: "meters of one event_type, each item addressed to its own", req: usageRequest{body: record("r1", item("API", "1"), item("requests", "1"), item("tokens", "1"))},
			meters: []string{
				`{"key": "requests", "event_type": "api_request", "aggregation": "COUNT"}`,
				`{"key": "a_requests", "event_type": "api_request", "aggregation": "COUNT"}`,
			},
			wantCode: 202, events: []wantEvent{
				{"r1:API", "@API", `{"quantity":1}`},
				{"r1:requests", "@requests", `{}`},
				{"r1:tokens", "@tokens", `{"usage":{"tokens":1}}`},
			}},
		{name: "every problem named, in record order", req: usageRequest{body: `{"customer_id": "c", "usage_data": [` + item("nope", "1") + "," + item("API", `"5"`) + "," + item("calls", "2") + `]}`},
			wantCode: 400, wantError: httpapi.CodeValidation,
			wantFields: []string{"usage_record_id", "usage_data[0].resource", "usage_data[1].quantity", "usage_data[2].quantity"}},
		{name: "a record to fix is 400 even when the catalog fails", req: usageRequest{body: record("r1", item("API", "true"))},
			catalogErr: errors.New("clickhouse: connection refused"), wantCode: 400, wantError: httpapi.CodeValidation, wantFields: []string{"usage_data[0].quantity"}},
		{name: "a record to fix is 400 without a catalog", req: usageRequest{body: record("r1", item("API", "true"))},
			noCatalog: true, wantCode: 400, wantError: httpapi.CodeValidation, wantFields: []string{"usage_data[0].quantity"}},
		{name: "one bad item fails the whole record", req: usageRequest{body: record("r1", item("API", "1"), item("tokens", `"x"`), item("calls", "1"))},
			wantCode: 400, wantError: httpapi.CodeValidation, wantFields: []string{"usage_data[1].quantity"}},

		// The body.
		{name: "empty body", req: usageRequest{body: ""}, wantCode: 400, wantError: httpapi.CodeBadRequest},
		{name: "invalid JSON", req: usageRequest{body: `{"usage_record_id": }`}, wantCode: 400, wantError: httpapi.CodeBadRequest, wantMsg: "line 1, column"},
		{name: "two records", req: usageRequest{body: seedUsageRecord + seedUsageRecord}, wantCode: 400, wantError: httpapi.CodeBadRequest, wantMsg: "one record per request"},
		{name: "an array", req: usageRequest{body: "[" + seedUsageRecord + "]"}, wantCode: 400, wantError: httpapi.CodeValidation, wantFields: []string{"usage_record"}},
		{name: "ndjson", req: usageRequest{body: seedUsageRecord, contentType: "application/x-ndjson"}, wantCode: 415, wantError: httpapi.CodeUnsupportedMedia},
		{name: "text", req: usageRequest{body: seedUsageRecord, contentType: "text/plain"}, wantCode: 415, wantError: httpapi.CodeUnsupportedMedia},

		// Dependencies.
		{name: "no catalog", req: usageRequest{body: seedUsageRecord}, noCatalog: true, wantCode: 503, wantError: httpapi.CodeUnavailable},
		{name: "catalog fails", req: usageRequest{body: seedUsageRecord}, catalogErr: errors.New("clickhouse: connection refused"), wantCode: 503, wantError: httpapi.CodeUnavailable},
		{name: "kafka does not acknowledge", req: usageRequest{body: seedUsageRecord}, publishErr: errors.New("kafka: not enough replicas"),
			wantCode: 503, wantError: httpapi.CodeUnavailable, wantMsg: "same usage_record_id and otherwise unchanged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cat := newPriceOpsCatalog(t)
			for _, def := range tt.meters {
				m := testMeter(t, def)
				cat.meters["acme"][m.Key] = m
			}
			cat.err = tt.catalogErr
			var catalog Catalog = cat
			if tt.noCatalog {
				catalog = nil
			}
			pub := &recordingPublisher{err: tt.publishErr}
			before := time.Now().UTC()
			code, header, body := tt.req.send(priceOpsServer(t, newPriceOpsHandler(catalog, pub)))
			if code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", code, tt.wantCode, body)
			}
			if code == 503 && header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			if code != 202 {
				var eb struct {
					Code    string         `json:"code"`
					Message string         `json:"message"`
					Details []fieldProblem `json:"details"`
				}
				if err := json.Unmarshal(body, &eb); err != nil && code != 503 {
					t.Fatalf("error body %s: %v", body, err)
				}
				var fields []string
				for _, d := range eb.Details {
					fields = append(fields, d.Field)
				}
				if eb.Code != tt.wantError || !strings.Contains(eb.Message, tt.wantMsg) || !slices.Equal(fields, tt.wantFields) {
					t.Errorf("error %s\nwant code %s, fields %v, message containing %q", body, tt.wantError, tt.wantFields, tt.wantMsg)
				}
				if strings.Contains(string(body), "globex") && tt.req.org != "globex" && tt.req.auth != globexKey {
					t.Errorf("error names another organization: %s", body)
				}
				if tt.publishErr == nil && len(pub.published()) != 0 {
					t.Errorf("a rejected record published %d events", len(pub.published()))
				}
				return
			}
			var resp usageAccepted
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatal(err)
			}
			var id struct {
				ID string `json:"usage_record_id"`
			}
			_ = json.Unmarshal([]byte(tt.req.body), &id)
			if resp.UsageRecordID != id.ID || resp.Accepted != len(tt.events) {
				t.Errorf("response %s, want usage_record_id %q and accepted %d", body, id.ID, len(tt.events))
			}
			if len(pub.calls) != 1 {
				t.Errorf("%d Publish calls, want one", len(pub.calls))
			}
			recs := checkRecords(t, pub.published(), before)
			checkUsageEvents(t, recs, "acme", before, tt.events)
			if n := cat.lookups.Load(); n != 1 {
				t.Errorf("%d catalog lookups, want one per record", n)
			}
		})
	}
}

// checkUsageEvents checks records against want, in order.
func checkUsageEvents(t *testing.T, recs []schemas.Record, org string, before time.Time, want []wantEvent) {
	t.Helper()
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i, w := range want {
		ev := recs[i].Event
		if recs[i].OrgID != org || ev.ID != w.id || ev.Type != w.typ || ev.CustomerID != "1008" || string(ev.Properties) != w.props {
			t.Errorf("record %d: org %s event %+v (properties %s), want %+v", i, recs[i].OrgID, ev, ev.Properties, w)
		}
		if ev.Time.Before(before.Truncate(time.Microsecond)) || ev.Time.After(time.Now()) || !ev.Time.Equal(recs[i].IngestedAt) {
			t.Errorf("record %d: time %s, ingested %s; want the arrival time", i, ev.Time, recs[i].IngestedAt)
		}
	}
}

// FuzzPriceOpsUsage feeds arbitrary bodies through the usage route and
// checks that it never panics, answers 202 or a JSON error, and publishes
// only for a 202, one event per item.
func FuzzPriceOpsUsage(f *testing.F) {
	for _, seed := range []string{
		seedUsageRecord, record("r", item("API", "1"), item("tokens", "2.5"), item("calls", "1")),
		record("r", item("API", "1e26")), record("r", item("API", `"1"`)), record("r", item("API", "1"), item("API", "2")),
		`{}`, `[]`, `{"usage_data": [null]}`, `{"usage_record_id": "\ud800", "customer_id": "c", "usage_data": []}`, "\xff",
	} {
		f.Add(seed)
	}
	cat := newPriceOpsCatalog(f)
	f.Fuzz(func(t *testing.T, body string) {
		pub := &recordingPublisher{}
		code, _, resp := usageRequest{body: body}.send(priceOpsServer(t, newPriceOpsHandler(cat, pub)))
		switch code {
		case 202:
			var ok usageAccepted
			if err := json.Unmarshal(resp, &ok); err != nil || ok.Accepted != len(pub.published()) || ok.Accepted == 0 {
				t.Fatalf("202 %s with %d published", resp, len(pub.published()))
			}
		case 400, 413:
			var e httpapi.Error
			if err := json.Unmarshal(resp, &e); err != nil || e.Code == "" || e.Message == "" || len(pub.published()) != 0 {
				t.Fatalf("%d %s with %d published", code, resp, len(pub.published()))
			}
		default:
			t.Fatalf("status %d: %s", code, resp)
		}
	})
}

// TestPriceOpsKafkaFailureBesideARejectedItem answers 503 when Kafka fails
// a record one of whose items is too large for a Kafka record: the other
// items were not acknowledged, and a 400 would make the client drop them
// instead of retrying.
func TestPriceOpsKafkaFailureBesideARejectedItem(t *testing.T) {
	cat := newPriceOpsCatalog(t)
	long := testMeter(t, `{"key": "`+strings.Repeat("l", 63)+`", "event_type": "`+strings.Repeat("t", schemas.MaxEventTypeLen)+`",
		"aggregation": "SUM", "value_property": "$.`+strings.Repeat(strings.Repeat("p", 30)+".", 12)+`end"}`)
	cat.meters["acme"][long.Key] = long
	pub := &recordingPublisher{err: errors.New("kafka: not enough replicas")}
	h := newPriceOpsHandler(cat, pub)
	// Room for the record of item API, not for the long meter's.
	now := time.Now().UTC()
	key, value, err := schemas.EncodeRecord(schemas.Record{OrgID: "acme", IngestedAt: now, Event: schemas.Event{
		ID: "r1:API", Type: schemas.AddressedType("API"), CustomerID: "1008", Time: now, Properties: json.RawMessage(`{"quantity":1}`)}})
	if err != nil {
		t.Fatal(err)
	}
	h.cfg.KafkaBatchBytes = int64(len(key)+len(value)+recordOverhead) + 64
	body := record("r1", item("API", "1"), item(long.Key, "1"))

	code, header, resp := usageRequest{body: body}.send(priceOpsServer(t, h))
	if code != http.StatusServiceUnavailable || header.Get("Retry-After") == "" || !strings.Contains(string(resp), "same usage_record_id and otherwise unchanged") {
		t.Errorf("status %d (Retry-After %q): %s; want 503 so that item API is retried", code, header.Get("Retry-After"), resp)
	}
	if len(pub.published()) != 1 {
		t.Errorf("%d records handed to Kafka, want item API's only", len(pub.published()))
	}

	// Once Kafka acknowledges, the retry is 400 naming the large item.
	pub.err = nil
	code, _, resp = usageRequest{body: body}.send(priceOpsServer(t, h))
	if code != http.StatusBadRequest || !strings.Contains(string(resp), `"field":"usage_data[1]"`) {
		t.Errorf("retry: status %d: %s, want 400 naming usage_data[1]", code, resp)
	}
}

// hungCatalog answers nothing until the caller's context ends, like a
// ClickHouse that accepts connections but does not answer.
type hungCatalog struct{}

func (hungCatalog) Meters(ctx context.Context, _ string) ([]schemas.Meter, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hungCatalog) Subscription(ctx context.Context, _, _ string) (schemas.Subscription, error) {
	<-ctx.Done()
	return schemas.Subscription{}, ctx.Err()
}

// TestCatalogLookupsAreBounded answers 503 with Retry-After once
// ProduceTimeout has passed when the catalog does not answer, on both
// routes that look it up, rather than holding the request for as long as
// the client waits.
func TestCatalogLookupsAreBounded(t *testing.T) {
	cfg := testConfig()
	cfg.ProduceTimeout = 200 * time.Millisecond
	cfg.KafkaMaxAttempts = 1
	s := newTestService(t, cfg, Deps{Publisher: &recordingPublisher{}, Catalog: hungCatalog{}, Keys: testKeys(t)})
	for _, tt := range []struct{ name, path, body string }{
		{"PriceOps usage record", "/api/v1/integration/organization/acme/usage", seedUsageRecord},
		{"Lago event of a subscription", EventsRoute, string(lagoSingle(lagoEv("t1", "", "sub-1", "")))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The client waits far longer than ProduceTimeout; the answer
			// must not wait for it.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req := httptest.NewRequestWithContext(ctx, http.MethodPost, tt.path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+acmeKey)
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			start := time.Now()
			s.Handler().ServeHTTP(rec, req)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("answered after %s; the lookups must end after ProduceTimeout (%s)", took, cfg.ProduceTimeout)
			}
			if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
				t.Errorf("status %d (Retry-After %q): %s; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
			}
		})
	}
}

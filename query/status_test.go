package query

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-oss/tally/internal/apispec"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/query/inspect"
	"github.com/tally-oss/tally/schemas"
)

// statusBody is the decoded body of GET /api/v1/status.
type statusBody struct {
	Organization string `json:"organization"`
	CheckedAt    string `json:"checked_at"`
	ClickHouse   struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"clickhouse"`
	Events *struct {
		LastHour         uint64  `json:"last_hour"`
		Last24h          uint64  `json:"last_24h"`
		LatestIngestedAt *string `json:"latest_ingested_at"`
	} `json:"events"`
	DeadLetters *struct {
		Last24h uint64 `json:"last_24h"`
	} `json:"dead_letters"`
	Meters *int `json:"meters"`
}

// TestStatus: the counts are the caller's organization's, exact (a
// retried insert and a redelivered batch count once), by acceptance time.
func TestStatus(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC().Truncate(time.Second)
	events := []eventRow{
		{org: "acme", customer: "c1", id: "e1", ingestedAt: now.Add(-10 * time.Minute), offset: 1},
		{org: "acme", customer: "c2", id: "e1", ingestedAt: now.Add(-5 * time.Minute), offset: 2},
		{org: "acme", customer: "c1", id: "e2", ingestedAt: now.Add(-3 * time.Hour), offset: 3},
		{org: "acme", customer: "c1", id: "e3", ingestedAt: now.Add(-48 * time.Hour), offset: 4},
		{org: "globex", customer: "c1", id: "e1", ingestedAt: now.Add(-72 * time.Hour), offset: 5},
	}
	insertEvents(t, e.conn, events...)
	insertEvents(t, e.conn, events[:3]...) // retried
	insertEvents(t, e.conn, events[1])     // redelivered
	dl := deadLetterRow{org: "acme", customer: "c1", eventID: "e9", meter: "tokens", reason: "value_missing",
		time: now, ingestedAt: now.Add(-2 * time.Hour), deadLetteredAt: now.Add(-2 * time.Hour)}
	old := dl
	old.eventID, old.deadLetteredAt = "e8", now.Add(-25*time.Hour)
	insertDeadLetters(t, e.conn, dl, dl, old)
	e.createMeter(keyAcme, `{"key": "tokens", "event_type": "llm", "aggregation": "SUM", "value_property": "$.v"}`)
	e.createMeter(keyAcme, `{"key": "calls", "event_type": "llm", "aggregation": "COUNT"}`)

	var s statusBody
	e.getJSON("/api/v1/status", keyAcme, http.StatusOK, &s)
	checked, err := time.Parse(time.RFC3339, s.CheckedAt)
	if err != nil || checked.Before(now.Add(-time.Minute)) || s.Organization != "acme" || !s.ClickHouse.OK || s.ClickHouse.Error != "" {
		t.Errorf("acme status: %+v", s)
	}
	if s.Events == nil || s.Events.LastHour != 2 || s.Events.Last24h != 3 || s.Events.LatestIngestedAt == nil ||
		*s.Events.LatestIngestedAt != now.Add(-5*time.Minute).Format(time.RFC3339) {
		t.Errorf("acme events: %s", mustMarshal(t, s.Events))
	}
	if s.DeadLetters == nil || s.DeadLetters.Last24h != 1 || s.Meters == nil || *s.Meters != 2 {
		t.Errorf("acme dead letters %s, meters %v", mustMarshal(t, s.DeadLetters), s.Meters)
	}

	// Globex: its one event is three days old; nothing else.
	var g statusBody
	e.getJSON("/api/v1/status", keyGlobex, http.StatusOK, &g)
	if g.Organization != "globex" || g.Events == nil || g.Events.LastHour != 0 || g.Events.Last24h != 0 ||
		g.Events.LatestIngestedAt == nil || *g.Events.LatestIngestedAt != now.Add(-72*time.Hour).Format(time.RFC3339) ||
		g.DeadLetters.Last24h != 0 || *g.Meters != 0 {
		t.Errorf("globex status: %s", mustMarshal(t, g))
	}

	code, body, _ := e.do("GET", "/api/v1/status?org_id=acme", keyGlobex, nil)
	wantError(t, "status with org_id", code, body, http.StatusBadRequest, httpapi.CodeValidation, "org_id: unknown parameter")
	code, body, _ = e.do("GET", "/api/v1/status", "", nil)
	wantError(t, "no key", code, body, http.StatusUnauthorized, httpapi.CodeUnauthorized, "Authorization")
	code, body, _ = e.do("DELETE", "/api/v1/status", keyAcme, nil)
	wantError(t, "DELETE", code, body, http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed, "GET")
}

// TestStatusNoEvents: an organization without events has a null latest
// time, not 1970.
func TestStatusNoEvents(t *testing.T) {
	e := newEnv(t)
	code, body, _ := e.do("GET", "/api/v1/status", keyAcme, nil)
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if string(raw["events"]) != `{"last_hour":0,"last_24h":0,"latest_ingested_at":null}` ||
		string(raw["dead_letters"]) != `{"last_24h":0}` || string(raw["meters"]) != "0" {
		t.Errorf("no events: %s", body)
	}
}

// TestStatusInvalidMeter: a stored meter definition that no longer
// decodes is counted as a meter, not reported as ClickHouse failing.
func TestStatusInvalidMeter(t *testing.T) {
	e := newEnv(t)
	e.createMeter(keyAcme, `{"key": "calls", "event_type": "llm", "aggregation": "COUNT"}`)
	batch, err := e.conn.PrepareBatch(t.Context(), "INSERT INTO meters (org_id, key, revision, definition, deleted, version, updated_at)")
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.Append("acme", "broken", uint64(1), `{"key": "broken", "aggregation": "NOPE"}`, uint8(0), uint64(1), time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	var s statusBody
	e.getJSON("/api/v1/status", keyAcme, http.StatusOK, &s)
	if !s.ClickHouse.OK || s.Meters == nil || *s.Meters != 2 {
		t.Errorf("status with an invalid meter: %s", mustMarshal(t, s))
	}
}

// TestStatusClickHouseDown: when ClickHouse cannot answer, the status
// says so with 503 and null figures, never zeros that look like a quiet
// day, and without ClickHouse's own error text.
func TestStatusClickHouseDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Protocol: clickhouse.Native, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	keys := &httpapi.Keys{}
	if err := keys.AddSpec("acme:" + keyAcme); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	svc, err := New(Config{ListenAddr: "127.0.0.1:0", MaxRows: DefaultMaxRows, Timeout: 2 * time.Second},
		Deps{ClickHouse: conn, Keys: keys, Registerer: reg, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+keyAcme)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || string(raw["clickhouse"]) != `{"ok":false,"error":"ClickHouse is unavailable"}` ||
		string(raw["events"]) != "null" || string(raw["dead_letters"]) != "null" || string(raw["meters"]) != "null" ||
		string(raw["organization"]) != `"acme"` {
		t.Errorf("ClickHouse down: %d %v", resp.StatusCode, raw)
	}
	// The query service is not ready either, and says which check fails
	// without its text (an address).
	if got := string(raw["components"]); got != `[{"name":"query","ready":false,"checks":{"clickhouse":"failing"},"error":""}]` {
		t.Errorf("components with ClickHouse down: %s", got)
	}
	// The description's example of this answer says what the code says.
	spec, err := apispec.Load()
	if err != nil {
		t.Fatal(err)
	}
	example, err := spec.Lookup(apispec.Pointer("paths", StatusRoute, "get", "responses", "503", "content", "application/json", "examples", "down", "value", "clickhouse"))
	if err != nil {
		t.Fatal(err)
	}
	var answered any
	if err := json.Unmarshal(raw["clickhouse"], &answered); err != nil {
		t.Fatal(err)
	}
	if got, want := mustMarshal(t, example), mustMarshal(t, answered); got != want {
		t.Errorf("schemas/openapi.yaml's 503 example of %s has clickhouse %s; the route answers %s", StatusRoute, got, want)
	}
}

// TestDeadLetterParamsInOpenAPI: the description's dead-letter parameters
// say what the route takes: reason is one of the reasons (anything else
// is a 400), customer_id 1 to 256 characters.
func TestDeadLetterParamsInOpenAPI(t *testing.T) {
	spec, err := apispec.Load()
	if err != nil {
		t.Fatal(err)
	}
	params, err := spec.Lookup(apispec.Pointer("paths", DeadLettersRoute, "get", "parameters"))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]map[string]any{}
	for _, p := range params.([]any) {
		p := p.(map[string]any)
		found[p["name"].(string)], _ = p["schema"].(map[string]any)
	}
	var enum []string
	values, _ := found["reason"]["enum"].([]any)
	for _, v := range values {
		enum = append(enum, fmt.Sprint(v))
	}
	if !slices.Equal(enum, inspect.Reasons) {
		t.Errorf("reason enum %v, the route takes %v", enum, inspect.Reasons)
	}
	if c := found["customer_id"]; fmt.Sprintf("%v %v", c["minLength"], c["maxLength"]) != fmt.Sprintf("%v %v", 1, schemas.MaxCustomerIDLen) {
		t.Errorf("customer_id schema %v, the route takes 1 to %d characters", c, schemas.MaxCustomerIDLen)
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

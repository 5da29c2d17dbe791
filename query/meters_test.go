package query

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

const tokensMeter = `{"key": "tokens", "name": "LLM tokens", "event_type": "llm.request", "aggregation": "SUM",
	"value_property": "$.usage.tokens", "group_by": {"model": "$.model"}, "filter": {"status": {"eq": "ok"}}}`

func TestMetersCRUD(t *testing.T) {
	e := newEnv(t)

	code, body, header := e.do("POST", "/api/v1/meters", keyAcme, []byte(tokensMeter))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	if loc := header.Get("Location"); loc != "/api/v1/meters/tokens" {
		t.Errorf("Location %q", loc)
	}
	var created schemas.Meter
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatal(err)
	}
	if created.Revision == 0 || created.CreatedAt.IsZero() || created.Key != "tokens" || created.Filter == nil {
		t.Errorf("created meter %s lacks revision, created_at or definition", body)
	}

	var got schemas.Meter
	e.getJSON("/api/v1/meters/tokens", keyAcme, http.StatusOK, &got)
	if got.Revision != created.Revision || !schemas.SameDefinition(got, created) || got.Name != "LLM tokens" {
		t.Errorf("GET returned %+v, want %+v", got, created)
	}

	e.createMeter(keyAcme, `{"key": "calls", "event_type": "llm.request", "aggregation": "COUNT"}`)
	e.createMeter(keyAcme, `{"key": "a-first", "event_type": "x", "aggregation": "COUNT"}`)
	var list struct{ Data []schemas.Meter }
	e.getJSON("/api/v1/meters", keyAcme, http.StatusOK, &list)
	var keys []string
	for _, m := range list.Data {
		keys = append(keys, m.Key)
	}
	if want := []string{"a-first", "calls", "tokens"}; !slices.Equal(keys, want) {
		t.Errorf("list keys %v, want %v", keys, want)
	}

	// The key exists: 409, and the stored meter is unchanged.
	code, body, _ = e.do("POST", "/api/v1/meters", keyAcme, []byte(strings.Replace(tokensMeter, "SUM", "MAX", 1)))
	wantError(t, "duplicate", code, body, http.StatusConflict, httpapi.CodeConflict, "already exists")

	code, body, _ = e.do("DELETE", "/api/v1/meters/calls", keyAcme, nil)
	if code != http.StatusNoContent || len(body) != 0 {
		t.Errorf("delete: %d %s", code, body)
	}
	code, body, _ = e.do("GET", "/api/v1/meters/calls", keyAcme, nil)
	wantError(t, "get deleted", code, body, http.StatusNotFound, httpapi.CodeNotFound, `meter "calls" not found`)
	code, body, _ = e.do("DELETE", "/api/v1/meters/calls", keyAcme, nil)
	wantError(t, "delete twice", code, body, http.StatusNotFound, httpapi.CodeNotFound, "not found")
	code, body, _ = e.do("GET", "/api/v1/meters/No%20Such%20Key", keyAcme, nil)
	wantError(t, "impossible key", code, body, http.StatusNotFound, httpapi.CodeNotFound, "not found")

	// An empty organization lists as data: [], not null.
	code, body, _ = e.do("GET", "/api/v1/meters", keyGlobex, nil)
	if code != http.StatusOK || strings.TrimSpace(string(body)) != `{"data":[]}` {
		t.Errorf("empty list: %d %s", code, body)
	}
}

// TestCreateMeterValidation: every problem of a definition is reported,
// each naming its field.
func TestCreateMeterValidation(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name       string
		body       string
		wantFields []string
	}{
		{"every problem at once",
			`{"key": "Bad Key", "event_type": "", "aggregation": "MEDIAN", "group_by": {"customer_id": "$.c", "bad-key": "$.x"}}`,
			[]string{"key", "event_type", "aggregation", "group_by.bad-key", "group_by.customer_id"}},
		{"value property for COUNT", `{"key": "k", "event_type": "t", "aggregation": "COUNT", "value_property": "$.v"}`,
			[]string{"value_property"}},
		{"value property missing", `{"key": "k", "event_type": "t", "aggregation": "SUM"}`, []string{"value_property"}},
		{"filter position", `{"key": "k", "event_type": "t", "aggregation": "COUNT", "filter": {"and": [{"status": {"eq": "ok"}}, {"n": {"gt": "x"}}]}}`,
			[]string{"filter.and[1].n.gt"}},
		{"unknown field", `{"key": "k", "event_type": "t", "aggregation": "COUNT", "filters": {}}`, []string{"filters"}},
		{"not JSON", `{"key": `, []string{"meter"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := e.do("POST", "/api/v1/meters", keyAcme, []byte(tt.body))
			var resp struct {
				Code    string
				Message string
				Details []errorDetail
			}
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatalf("%d %s: %v", code, body, err)
			}
			if code != http.StatusBadRequest || resp.Code != httpapi.CodeValidation {
				t.Fatalf("%d %s, want 400 %s", code, body, httpapi.CodeValidation)
			}
			var fields []string
			for _, d := range resp.Details {
				fields = append(fields, d.Field)
				if d.Message == "" {
					t.Errorf("detail %s has no message", d.Field)
				}
				if !strings.Contains(resp.Message, d.Field) {
					t.Errorf("message %q does not name %s", resp.Message, d.Field)
				}
			}
			slices.Sort(fields)
			want := slices.Sorted(slices.Values(tt.wantFields))
			if !slices.Equal(fields, want) {
				t.Errorf("fields %v, want %v (%s)", fields, want, body)
			}
		})
	}
}

func TestMetersHTTPErrors(t *testing.T) {
	e := newEnv(t)
	code, body, _ := e.do("POST", "/api/v1/meters", keyAcme, []byte(tokensMeter), "Content-Type", "text/plain")
	wantError(t, "content type", code, body, http.StatusUnsupportedMediaType, httpapi.CodeUnsupportedMedia, "application/json")

	huge := `{"key": "k", "event_type": "t", "aggregation": "COUNT", "description": "` + strings.Repeat("x", 2<<20) + `"}`
	code, body, _ = e.do("POST", "/api/v1/meters", keyAcme, []byte(huge))
	wantError(t, "too large", code, body, http.StatusRequestEntityTooLarge, httpapi.CodeTooLarge, "1 MiB")

	code, body, header := e.do("PUT", "/api/v1/meters/tokens", keyAcme, []byte(tokensMeter))
	wantError(t, "PUT", code, body, http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed, "GET, DELETE")
	if header.Get("Allow") != "GET, DELETE" {
		t.Errorf("Allow %q", header.Get("Allow"))
	}
	code, body, _ = e.do("POST", "/api/v1/meters/tokens/query", keyAcme, nil)
	wantError(t, "POST query", code, body, http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed, "GET")
	code, body, _ = e.do("GET", "/api/v1/nothing", keyAcme, nil)
	wantError(t, "unknown route", code, body, http.StatusNotFound, httpapi.CodeNotFound, "/api/v1/meters")
}

// TestAuthRequired: every API route answers 401 without a valid key, and
// never reaches ClickHouse or reveals whether a meter exists.
func TestAuthRequired(t *testing.T) {
	e := newEnv(t)
	e.createMeter(keyAcme, tokensMeter)
	routes := []struct{ method, path string }{
		{"GET", "/api/v1/meters"},
		{"POST", "/api/v1/meters"},
		{"GET", "/api/v1/meters/tokens"},
		{"DELETE", "/api/v1/meters/tokens"},
		{"GET", "/api/v1/meters/tokens/query"},
		{"GET", "/api/v1/meters/missing/query"},
		{"GET", "/api/v1/other"},
	}
	for _, r := range routes {
		for _, key := range []string{"", "not-a-key-0123456789"} {
			code, body, _ := e.do(r.method, r.path+"?org_id=acme", key, nil, "X-Org-Id", "acme")
			wantError(t, r.method+" "+r.path, code, body, http.StatusUnauthorized, httpapi.CodeUnauthorized, "")
		}
	}
	var m schemas.Meter
	e.getJSON("/api/v1/meters/tokens", keyAcme, http.StatusOK, &m) // the DELETEs did nothing
}

func wantError(t *testing.T, what string, code int, body []byte, wantCode int, wantErrCode, wantMsg string) {
	t.Helper()
	var resp httpapi.Error
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Errorf("%s: %d %q is not a JSON error: %v", what, code, body, err)
		return
	}
	if code != wantCode || resp.Code != wantErrCode || !strings.Contains(resp.Message, wantMsg) {
		t.Errorf("%s: %d %s, want %d %s with %q", what, code, body, wantCode, wantErrCode, wantMsg)
	}
}

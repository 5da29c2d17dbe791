package faults

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// The oracle's reading of the meter rules, checked without a stack: a
// wrong oracle would make every fault look like a loss or a duplicate, or
// worse, agree with a wrong pipeline.
func TestOracleNumbers(t *testing.T) {
	for _, c := range []struct {
		literal string
		want    string // "" when unmeterable
	}{
		{"12.5", "12.5"}, {`"12.5"`, "12.5"}, {"-3", "-3"}, {"0.000000000001", "0.000000000001"},
		{"99999999999999999999999999.999999999999", "99999999999999999999999999.999999999999"},
		{"1" + "00000000000000000000000000", ""}, // 10^26
		{"0.1234567890123", ""},                  // 13 decimals
		{`"lots"`, ""}, {`{"n": 1}`, ""}, {`["1"]`, ""}, {"true", ""}, {"", ""},
		{"9e2000000", ""}, {"1e3", "1000"},
	} {
		got, ok := numberOf(c.literal)
		if ok != (c.want != "") || ok && !got.Equal(decimal.RequireFromString(c.want)) {
			t.Errorf("numberOf(%q) = %s, %v; want %q", c.literal, got, ok, c.want)
		}
	}
	for literal, want := range map[string]string{`"gpt"`: "gpt", "1.50": "1.5", "true": "true", "": ""} {
		if got, ok := scalarOf(literal); !ok || got != want {
			t.Errorf("scalarOf(%q) = %q, %v; want %q", literal, got, ok, want)
		}
	}
	for _, literal := range []string{`{"m": 1}`, `[1]`} {
		if _, ok := scalarOf(literal); ok {
			t.Errorf("scalarOf(%q) is a scalar", literal)
		}
	}
}

func TestOracleExpect(t *testing.T) {
	day := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	ev := func(id, tokens, latency, session, model, status string, at time.Time) *event {
		return &event{org: "org-a", id: id, customer: "c", at: at, tokens: tokens, latency: latency,
			session: session, model: model, status: status}
	}
	ex := expect([]*event{
		ev("1", "1.5", "10", `"s1"`, `"m"`, "ok", day.Add(time.Hour)),
		ev("2", "2.25", "30", `"s1"`, `"m"`, "ok", day.Add(23*time.Hour)),
		ev("3", "100", "20", `"s2"`, `"m"`, "error", day.Add(2*time.Hour)), // SUM filter excludes it
		ev("4", `"lots"`, "5", `"s3"`, `"m"`, "ok", day.Add(3*time.Hour)),  // SUM dead letter
		ev("5", "1", "7", `"s1"`, `{"x": 1}`, "ok", day.Add(4*time.Hour)),  // every meter: dead letter
		ev("6", "4", "99", `"s9"`, `"m"`, "ok", day.Add(24*time.Hour)),     // next day
		ev("7", "1", "", "", "", "error", day.Add(5*time.Hour)),            // MAX and UNIQUE_COUNT: missing; group ""
	})
	want := map[cell]string{
		{"org-a", "f_tokens", "c", day, "m"}:                       "3.75",
		{"org-a", "f_calls", "c", day, "m"}:                        "4",
		{"org-a", "f_latency", "c", day, "m"}:                      "30",
		{"org-a", "f_sessions", "c", day, "m"}:                     "3",
		{"org-a", "f_tokens", "c", day.Add(24 * time.Hour), "m"}:   "4",
		{"org-a", "f_calls", "c", day.Add(24 * time.Hour), "m"}:    "1",
		{"org-a", "f_latency", "c", day.Add(24 * time.Hour), "m"}:  "99",
		{"org-a", "f_sessions", "c", day.Add(24 * time.Hour), "m"}: "1",
		{"org-a", "f_calls", "c", day, ""}:                         "1",
	}
	if len(ex.values) != len(want) {
		t.Errorf("%d cells, want %d: %v", len(ex.values), len(want), ex.values)
	}
	for c, w := range want {
		if got, ok := ex.values[c]; !ok || !got.Equal(decimal.RequireFromString(w)) {
			t.Errorf("%v = %s (present %v), want %s", c, got, ok, w)
		}
	}
	// Dead letters: event 4 (SUM), event 5 (all four), event 7 (MAX,
	// UNIQUE_COUNT; SUM is filtered out).
	if ex.deadLetters != 1+4+2 || ex.countable != 6 {
		t.Errorf("dead letters %d, countable %d; want 7, 6", ex.deadLetters, ex.countable)
	}
}

package measure

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestUsageOutOfRange: two readings of 9e25 tokens are each a valid
// value, but their sum is beyond the ±10^26 Tally computes exactly (and
// ClickHouse's sum wraps around). The request is answered 422
// usage_out_of_range naming the meter, never with a wrong number or a
// 500; a month that holds one of them is served.
func TestUsageOutOfRange(t *testing.T) {
	e := newEnv(t)
	f := setup(e)
	const big = "90000000000000000000000000"
	e.insert(f.tokensAt("a", "2026-03-03T12:00:00Z", big, "eu"), f.tokensAt("b", "2026-03-04T12:00:00Z", big, "eu"),
		f.tokensAt("c", "2026-04-03T12:00:00Z", big, "eu"))

	code, body, _ := e.post(keyAcme, acmeUsagePath, usageBody("ch_tokens", "2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z"))
	var answer struct{ Code, Message string }
	if err := json.Unmarshal(body, &answer); err != nil {
		t.Fatalf("%d %s: %v", code, body, err)
	}
	if code != http.StatusUnprocessableEntity || answer.Code != codeOutOfRange ||
		!strings.Contains(answer.Message, `meter "tokens"`) || !strings.Contains(answer.Message, "exceeds the range Tally can represent exactly") {
		t.Errorf("March: %d %s, want 422 %s naming meter tokens", code, body, codeOutOfRange)
	}

	april := e.usageOK(keyAcme, acmeUsagePath, usageBody("ch_tokens", "2026-04-01T04:00:00Z", "2026-05-01T04:00:00Z"))
	wantLines(t, "April", april.lines(),
		"2026-04-01T04:00:00Z..2026-05-01T04:00:00Z = "+big,
		"  2026-04-03T04:00:00Z..2026-04-04T04:00:00Z region=eu = "+big)
}

// TestUsageBreakdownOutOfRange: a period whose total is in range (0) but
// whose daily breakdown is not (+9e25 twice on one day, -9e25 twice on
// the next) is refused whole with 422, never served with a wrapped day.
func TestUsageBreakdownOutOfRange(t *testing.T) {
	e := newEnv(t)
	f := setup(e)
	const big = "90000000000000000000000000"
	e.insert(f.tokensAt("a", "2026-03-03T12:00:00Z", big, "eu"), f.tokensAt("b", "2026-03-03T13:00:00Z", big, "eu"),
		f.tokensAt("c", "2026-03-04T12:00:00Z", "-"+big, "eu"), f.tokensAt("d", "2026-03-04T13:00:00Z", "-"+big, "eu"))
	code, body, _ := e.post(keyAcme, acmeUsagePath, usageBody("ch_tokens", "2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z"))
	var answer struct{ Code, Message string }
	if err := json.Unmarshal(body, &answer); err != nil {
		t.Fatalf("%d %s: %v", code, body, err)
	}
	if code != http.StatusUnprocessableEntity || answer.Code != codeOutOfRange || !strings.Contains(answer.Message, `meter "tokens"`) {
		t.Errorf("March: %d %s, want 422 %s naming meter tokens", code, body, codeOutOfRange)
	}
}

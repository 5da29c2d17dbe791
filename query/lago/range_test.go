package lago

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCurrentUsageOutOfRange: two readings of 9e25 are each a valid
// value, but their sum is beyond the ±10^26 Tally computes exactly (and
// ClickHouse's sum wraps around). current_usage answers 422
// usage_out_of_range naming the meter, never a wrong amount or a 500.
func TestCurrentUsageOutOfRange(t *testing.T) {
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	e := newLagoEnv(t, now)
	apiCalls := e.meter("acme", apiCallsMeter)
	e.meter("acme", storageMeter)
	e.customer("acme", `{"external_id": "cust-1"}`)
	e.plan("acme", proPlan)
	e.subscription("acme", `{"external_id": "sub-1", "external_customer_id": "cust-1", "plan_code": "pro", "subscription_at": "2026-01-10T00:00:00Z"}`)
	const big = "90000000000000000000000000"
	e.insert(reading{"acme", apiCalls, "cust-1", "a1", "2026-03-02T00:00:00Z", big, nil},
		reading{"acme", apiCalls, "cust-1", "a2", "2026-03-03T00:00:00Z", big, nil})

	code, body := e.get(acmeKey, "cust-1", "?external_subscription_id=sub-1")
	var answer Error
	if err := json.Unmarshal([]byte(body), &answer); err != nil {
		t.Fatalf("%d %s: %v", code, body, err)
	}
	if code != http.StatusUnprocessableEntity || answer.Status != code || answer.Code != "usage_out_of_range" ||
		!strings.Contains(answer.Message, `meter "api_calls"`) || !strings.Contains(answer.Message, "exceeds the range Tally can represent exactly") {
		t.Errorf("current_usage: %d %s, want 422 usage_out_of_range naming meter api_calls", code, body)
	}
}

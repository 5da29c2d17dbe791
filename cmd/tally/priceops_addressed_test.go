package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestPriceOpsItemsStayTheirMetersLater: a PriceOps item is an event
// addressed to its resource's meter ("@API"), so a meter of the same
// event_type created afterwards, and backfilled from the stored events,
// does not count it; and records of the resource keep being accepted
// beside that meter.
//
// Hand-computed: API = 5000 + 1 (the native event of type api) + 30 =
// 5031; requests counts the native event only: 1.
func TestPriceOpsItemsStayTheirMetersLater(t *testing.T) {
	p := startPipeline(t)
	call := func(method, path, body string, want int) []byte {
		t.Helper()
		return p.mustAPI(acmeKey, method, path, body, want)
	}
	const usagePath = "/api/v1/integration/organization/acme/usage"
	record := func(id string, quantity int) string {
		return fmt.Sprintf(`{"usage_record_id": %q, "customer_id": "1008", "usage_data": [{"resource": "API", "quantity": %d}]}`, id, quantity)
	}
	window := params("from", time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), "to", time.Now().UTC().Add(time.Hour).Format(time.RFC3339),
		"group_by", "customer_id")

	call("POST", "/api/v1/meters", `{"key": "API", "event_type": "api", "aggregation": "SUM", "value_property": "$.quantity"}`, http.StatusCreated)
	call("POST", usagePath, record("123457", 5000), http.StatusAccepted)
	p.waitUsage(acmeKey, "API", window, "customer_id=1008 => 5000")
	if n := p.count(`SELECT count() FROM events WHERE org_id = 'acme' AND id = '123457:API' AND type = '@API'`); n != 1 {
		t.Errorf("stored events of the item with type @API: %d, want 1", n)
	}

	// Later, the product team meters requests of the same event type.
	call("POST", "/api/v1/meters", `{"key": "requests", "event_type": "api", "aggregation": "COUNT"}`, http.StatusCreated)
	waitFor(t, func() bool {
		return p.count(`SELECT count() FROM meter_backfills WHERE org_id = 'acme' AND meter_key = 'requests'`) == 1
	}, func() string { return "the backfill of requests did not complete" })
	if got := p.usage(acmeKey, "requests", window); len(got) != 0 {
		t.Errorf("requests counts the PriceOps item of API after its backfill: %q", got)
	}

	// Records of API are still accepted; a native event of type api is
	// counted by both meters; the record, sent last on the same record
	// key (acme/1008), is read after it.
	call("POST", "/api/v1/events", `{"id": "native-1", "type": "api", "customer_id": "1008", "properties": {"quantity": 1}}`, http.StatusAccepted)
	call("POST", usagePath, record("123458", 30), http.StatusAccepted)
	p.waitUsage(acmeKey, "API", window, "customer_id=1008 => 5031")
	p.waitUsage(acmeKey, "requests", window, "customer_id=1008 => 1")
}

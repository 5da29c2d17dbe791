package query

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/schemas"
)

// TestMeterStoredBeforeTheAddressedPrefix: a meter stored before "@"
// was reserved (event_type "@mention") must stay listable, readable and
// deletable (before the fix every read decoded it with the rules for new
// meters: the list left it out and its GET answered 500, and the
// usage and billing of plans charging it failed the same way).
func TestMeterStoredBeforeTheAddressedPrefix(t *testing.T) {
	c := newCatalogEnv(t)
	c.catalogMeters(keyAcme)
	legacy := schemas.Meter{Key: "mentions", EventType: "@mention", Aggregation: schemas.AggCount}
	if _, err := meterstore.New(c.conn).Create(t.Context(), "acme", legacy); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/v1/meters", "/api/v1/meters/mentions", "/api/v1/meters/calls"} {
		code, body := c.call("GET", path, keyAcme, "")
		if code != http.StatusOK {
			t.Errorf("GET %s: %d %.200s; want 200", path, code, body)
		}
		if path == "/api/v1/meters" && !strings.Contains(string(body), `"mentions"`) {
			t.Errorf("GET %s: %d, the legacy meter is silently left out of the list: %.300s", path, code, body)
		}
	}
}

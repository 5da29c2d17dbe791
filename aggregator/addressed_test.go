package aggregator

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tally-oss/tally/schemas"
)

// TestEvaluateAddressedEvents: an event of type "@API" is metered by the
// meter API alone; a meter of API's event_type ignores it, and an event of
// that event_type is metered by both as before.
func TestEvaluateAddressedEvents(t *testing.T) {
	parse := func(def string) schemas.Meter {
		t.Helper()
		m, err := schemas.ParseMeter([]byte(def))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	idx := indexMeters(map[string][]schemas.Meter{
		testOrg: {
			parse(`{"key":"API","event_type":"api","aggregation":"SUM","value_property":"$.quantity","revision":3}`),
			parse(`{"key":"requests","event_type":"api","aggregation":"COUNT","revision":4}`),
			// Its event_type is the name of API's addressed type without
			// the prefix: it sees none of API's addressed events.
			parse(`{"key":"api-total","event_type":"API","aggregation":"SUM","value_property":"$.quantity","revision":5}`),
		},
		"other": {parse(`{"key":"API","event_type":"api","aggregation":"COUNT","revision":9}`)},
	})
	metered := func(typ, props string) (keys []string, failures []evalFailure) {
		rec := event("c1", "e1", typ, t0, props)
		readings, failures := evaluate(rec, t0, idx[testOrg][typ])
		for _, r := range readings {
			keys = append(keys, fmt.Sprintf("%s/%d=%s", r.MeterKey, r.MeterRevision, r.Value))
		}
		return keys, failures
	}
	for _, tc := range []struct {
		typ, props string
		want       []string
		failures   int
	}{
		{"@API", `{"quantity":5000}`, []string{"API/3=5000"}, 0},
		{"@requests", `{"quantity":5000}`, []string{"requests/4=1"}, 0},
		{"api", `{"quantity":7}`, []string{"API/3=7", "requests/4=1"}, 0},
		{"API", `{"quantity":2}`, []string{"api-total/5=2"}, 0},
		// Addressed but not meterable by its meter: a failure of that
		// meter only (requests would have counted it).
		{"@API", `{}`, nil, 1},
		{"@nope", `{"quantity":1}`, nil, 0},
		{"@api", `{"quantity":1}`, nil, 0}, // keys are case-sensitive
	} {
		got, failures := metered(tc.typ, tc.props)
		if !slices.Equal(got, tc.want) || len(failures) != tc.failures {
			t.Errorf("event of type %q %s: readings %v, failures %+v; want %v and %d failures", tc.typ, tc.props, got, failures, tc.want, tc.failures)
		}
		for _, f := range failures {
			if f.meterKey != "API" {
				t.Errorf("event of type %q: failure of meter %q, want API's only", tc.typ, f.meterKey)
			}
		}
	}
	if set := idx["other"]["@API"]; set == nil || len(set.meters) != 1 || set.meters[0].Revision != 9 {
		t.Errorf("other's @API finds %v, want other's API alone", set)
	}
}

// TestScanEventsQuery: the backfill reads the events of every type of a
// meter in one statement.
func TestScanEventsQuery(t *testing.T) {
	query, args := scanEventsQuery("acme", []string{"api", "@API"})
	if !strings.HasSuffix(query, "FROM events WHERE org_id = ? AND type IN (?, ?)") || !strings.HasPrefix(query, "SELECT type, ") {
		t.Errorf("query %q", query)
	}
	if fmt.Sprint(args) != "[acme api @API]" {
		t.Errorf("args %v, want [acme api @API]", args)
	}
	if query, args := scanEventsQuery("acme", []string{"api"}); !strings.HasSuffix(query, "type IN (?)") || len(args) != 2 {
		t.Errorf("one type: %q %v", query, args)
	}
}

// TestBackfillAddressedEvents: stored events addressed to API are not
// counted by a meter created later with API's event_type, and are counted
// again by API created anew (a new revision, even of another event_type).
func TestBackfillAddressedEvents(t *testing.T) {
	e := newEnv(t, 2)
	api := e.createMeter(testOrg, `{"key":"API","event_type":"api","aggregation":"SUM","value_property":"$.quantity"}`)
	for i := range 20 {
		e.produce(event(fmt.Sprintf("c%d", i%3), fmt.Sprintf("r%d:API", i), "@API", t0, `{"quantity":5000}`))
	}
	for i := range 5 {
		e.produce(event("c1", fmt.Sprintf("native%d", i), "api", t0, `{"quantity":1}`))
	}
	cfg := withGroup(testConfig(), t)
	e.start(cfg)
	e.waitCommitted(cfg.GroupID)
	backfilled := func(m schemas.Meter) func() bool {
		return func() bool {
			return e.count(`SELECT count() FROM meter_backfills FINAL WHERE org_id = ? AND meter_key = ? AND meter_revision = ?`,
				testOrg, m.Key, m.Revision) == 1
		}
	}
	e.waitFor("API's backfill", backfilled(api))
	sum := func(m schemas.Meter) string {
		return e.decimal(`SELECT sum(value) FROM readings FINAL WHERE org_id = ? AND meter_key = ? AND meter_revision = ?`,
			testOrg, m.Key, m.Revision).String()
	}
	if got := sum(api); got != "100005" {
		t.Errorf("API = %s, want 100005 (20 x 5000 addressed + 5 x 1 of its event_type)", got)
	}

	// A meter of API's event_type, created later, counts the native
	// events alone.
	requests := e.createMeter(testOrg, `{"key":"requests","event_type":"api","aggregation":"COUNT"}`)
	e.waitFor("requests' backfill", backfilled(requests))
	if got := sum(requests); got != "5" {
		t.Errorf("requests = %s, want 5: the events addressed to API are not its", got)
	}

	// API anew, of another event_type: its addressed events are still its.
	if err := e.meters.Delete(e.ctx, testOrg, "API"); err != nil {
		t.Fatal(err)
	}
	again := e.createMeter(testOrg, `{"key":"API","event_type":"api.v2","aggregation":"SUM","value_property":"$.quantity"}`)
	if again.Revision == api.Revision {
		t.Fatalf("API created again kept revision %d", api.Revision)
	}
	e.waitFor("the backfill of API's new revision", backfilled(again))
	if got := sum(again); got != "100000" {
		t.Errorf("API (new revision) = %s, want 100000 (20 x 5000 addressed; the api events are no longer its type)", got)
	}
	if n := e.count(`SELECT count() FROM dead_letters FINAL`); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

// TestMeteredTypesOnce: a stored meter whose event_type is its own
// addressed type is indexed once, so each event meters once.
func TestMeteredTypesOnce(t *testing.T) {
	m := &schemas.Meter{Key: "k", EventType: schemas.AddressedType("k")}
	if got := meteredTypes(m); len(got) != 1 || got[0] != "@k" {
		t.Errorf("meteredTypes = %v, want [@k]", got)
	}
	if got := meteredTypes(&schemas.Meter{Key: "k", EventType: "e"}); len(got) != 2 {
		t.Errorf("meteredTypes = %v, want [e @k]", got)
	}
}

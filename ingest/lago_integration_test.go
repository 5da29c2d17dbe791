package ingest

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

// TestLagoEventsIntoKafka posts Lago events, single and batched, one of
// them twice, through the real in-process broker and reads back what the
// aggregator would read: Tally events with the identity (org,
// customer_id, transaction_id), keyed by the resolved customer.
func TestLagoEventsIntoKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	const topic, partitions = "events", 3
	testenv.CreateTopic(t, brokers, topic, partitions)
	keys := testKeys(t)
	s := newTestService(t, testConfig(), Deps{Kafka: kafkaConfig(brokers, topic), Catalog: newLagoCatalog(), Keys: keys})
	t.Cleanup(func() { _ = s.closePublisher() })
	srv := s.Handler()

	now := time.Now().UTC()
	ts := func(d time.Duration) string { return fmt.Sprintf("%d.25", now.Add(-d).Unix()) }
	batch := lagoBatchBody(
		lagoEv("t1", "", "sub-1", ts(time.Hour)),
		lagoEv("t2", "cust-1", "sub-1", `"`+ts(2*time.Hour)+`"`),
		lagoEv("t3", "cust-9", "", ts(3*time.Hour)),
	)
	for _, req := range []struct {
		path string
		body []byte
	}{
		{LagoBatchRoute, batch},
		{LagoBatchRoute, batch}, // a retry: the same identities and times
		{EventsRoute, lagoSingle(lagoEv("t4", "", "sub-1", ts(4*time.Hour)))},
	} {
		r := httptest.NewRequest(http.MethodPost, req.path, bytes.NewReader(req.body))
		r.Header.Set("Authorization", "Bearer "+acmeKey)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", req.path, rec.Code, rec.Body)
		}
	}

	msgs := readAll(t, brokers, topic, partitions, 7)
	got := map[string]int{}
	for _, m := range msgs {
		rec, err := schemas.DecodeRecord(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Key, schemas.RecordKey(rec.OrgID, rec.Event.CustomerID)) {
			t.Errorf("key %q for %s/%s", m.Key, rec.OrgID, rec.Event.CustomerID)
		}
		if rec.Event.Type != "api_calls" || string(rec.Event.Properties) != `{"tokens":"2.5"}` || rec.Event.Time.Nanosecond() != 250_000_000 {
			t.Errorf("event %+v", rec.Event)
		}
		got[fmt.Sprintf("%s/%s/%s@%d", rec.OrgID, rec.Event.CustomerID, rec.Event.ID, rec.Event.Time.Unix())]++
	}
	want := map[string]int{
		fmt.Sprintf("acme/cust-1/t1@%d", now.Add(-time.Hour).Unix()):   2,
		fmt.Sprintf("acme/cust-1/t2@%d", now.Add(-2*time.Hour).Unix()): 2,
		fmt.Sprintf("acme/cust-9/t3@%d", now.Add(-3*time.Hour).Unix()): 2,
		fmt.Sprintf("acme/cust-1/t4@%d", now.Add(-4*time.Hour).Unix()): 1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("records\n got %v\nwant %v", got, want)
	}
}

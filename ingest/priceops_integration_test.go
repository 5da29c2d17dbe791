package ingest

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

// TestPriceOpsUsageIntoKafka posts usage records through the real
// in-process broker and reads back what the aggregator would read.
func TestPriceOpsUsageIntoKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	const topic, partitions = "events", 3
	testenv.CreateTopic(t, brokers, topic, partitions)
	cfg := testConfig()
	pub := newKafkaPublisher(kafkaConfig(brokers, topic), cfg)
	t.Cleanup(func() { _ = pub.Close() })
	srv := priceOpsServer(t, newPriceOpsHandler(newPriceOpsCatalog(t), pub))

	before := time.Now().UTC()
	for _, req := range []usageRequest{
		{body: seedUsageRecord},
		{body: seedUsageRecord, auth: "Bearer " + acmeKey}, // a retry: the same event id
		{body: record("123458", item("API", "12.5"), item("tokens", "3"))},
	} {
		code, _, body := req.send(srv)
		if code != 202 {
			t.Fatalf("%s: %d %s", req.body, code, body)
		}
		var resp usageAccepted
		if err := json.Unmarshal(body, &resp); err != nil || resp.Accepted == 0 {
			t.Fatalf("response %s", body)
		}
	}

	msgs := readAll(t, brokers, topic, partitions, 4)
	want := map[string]wantEvent{ // by id; the retry is a second record of the first
		"123457:API":    {"123457:API", "@API", `{"quantity":5000}`},
		"123458:API":    {"123458:API", "@API", `{"quantity":12.5}`},
		"123458:tokens": {"123458:tokens", "@tokens", `{"usage":{"tokens":3}}`},
	}
	seen := map[string]int{}
	for _, m := range msgs {
		rec, err := schemas.DecodeRecord(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Key, schemas.RecordKey("acme", "1008")) {
			t.Errorf("key %q, want acme's customer 1008", m.Key)
		}
		w, ok := want[rec.Event.ID]
		if !ok {
			t.Errorf("unexpected record %+v", rec.Event)
			continue
		}
		seen[rec.Event.ID]++
		checkUsageEvents(t, []schemas.Record{rec}, "acme", before, []wantEvent{w})
	}
	if seen["123457:API"] != 2 || seen["123458:API"] != 1 || seen["123458:tokens"] != 1 {
		t.Errorf("records by id %v", seen)
	}
}

package ingest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

// startService runs a service against Kafka and returns its base URL and
// a stop function returning Run's error. Unless the test stops it, it is
// stopped at the end of the test and must stop cleanly.
func startService(t *testing.T, cfg Config, brokers []string, topic string) (base string, stop func() error) {
	t.Helper()
	s := newTestService(t, cfg, Deps{Kafka: kafkaConfig(brokers, topic)})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	runErr := sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	var stoppedByTest atomic.Bool
	t.Cleanup(func() {
		if err := runErr(); err != nil && !stoppedByTest.Load() {
			t.Errorf("Run: %v", err)
		}
	})
	return "http://" + s.Addr(), func() error {
		stoppedByTest.Store(true)
		return runErr()
	}
}

// readAll reads n records from every partition of topic.
func readAll(t *testing.T, brokers []string, topic string, partitions, n int) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := make(chan kafka.Message)
	var wg sync.WaitGroup
	for p := range partitions {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxWait: 50 * time.Millisecond})
		wg.Go(func() {
			defer r.Close()
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					return
				}
				select {
				case out <- m:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	var msgs []kafka.Message
	for len(msgs) < n {
		select {
		case m := <-out:
			msgs = append(msgs, m)
		case <-ctx.Done():
			t.Fatalf("read %d of %d records", len(msgs), n)
		}
	}
	cancel()
	wg.Wait()
	return msgs
}

func TestIngestIntoKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	const topic, partitions = "events", 4
	testenv.CreateTopic(t, brokers, topic, partitions)
	base, _ := startService(t, testConfig(), brokers, topic)

	// Eight customers, five requests each in every body format; ids
	// encode customer and sequence so that order can be checked.
	start := time.Now().UTC()
	customers := []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"}
	const rounds = 5
	for round := range rounds {
		var evs []string
		for _, c := range customers {
			evs = append(evs, event(fmt.Sprintf("%s-%d", c, round), c))
		}
		var req request
		switch round % 3 {
		case 0:
			req = request{body: array(evs...)}
		case 1:
			req = request{body: lines(evs...), contentType: "application/x-ndjson"}
		case 2:
			req = request{body: gz(array(evs...)), contentEncoding: "gzip"}
		}
		if code, body := post(t, base, req); code != 202 || !strings.Contains(string(body), `"accepted":8,"rejected":[]`) {
			t.Fatalf("round %d: %d %s", round, code, body)
		}
	}
	// Another organization posting the same customer id, with a body that
	// tries to name acme: it stays globex.
	if code, body := post(t, base, request{body: []byte(`{"id":"g-1","type":"api_call","customer_id":"c0","org_id":"acme"}`), auth: "Bearer " + globexKey}); code != 202 {
		t.Fatalf("globex: %d %s", code, body)
	}
	// A request with an invalid event next to a valid one.
	if code, body := post(t, base, request{body: array(event("c0-5", "c0"), `{"id":"x"}`)}); code != 202 || !strings.Contains(string(body), `"accepted":1`) {
		t.Fatalf("mixed: %d %s", code, body)
	}

	total := len(customers)*rounds + 2
	msgs := readAll(t, brokers, topic, partitions, total)
	partitionOf := map[string]int{}
	lastSeq := map[string]int{}
	orgs := map[string]int{}
	for _, m := range msgs {
		rec, err := schemas.DecodeRecord(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		orgs[rec.OrgID]++
		if !bytes.Equal(m.Key, schemas.RecordKey(rec.OrgID, rec.Event.CustomerID)) {
			t.Errorf("key %q for %s/%s", m.Key, rec.OrgID, rec.Event.CustomerID)
		}
		if len(m.Headers) != 1 || m.Headers[0].Key != "content-type" || string(m.Headers[0].Value) != schemas.RecordContentType {
			t.Errorf("headers %v", m.Headers)
		}
		if rec.IngestedAt.Before(start.Truncate(time.Second)) || rec.IngestedAt.After(time.Now()) {
			t.Errorf("ingested at %s", rec.IngestedAt)
		}
		if rec.OrgID == "globex" {
			if rec.Event.ID != "g-1" {
				t.Errorf("globex record %+v", rec)
			}
			continue
		}
		if rec.Event.Type != "api_call" || string(rec.Event.Properties) != `{"tokens":"12.5"}` {
			t.Errorf("event %+v", rec.Event)
		}
		key := string(m.Key)
		if p, ok := partitionOf[key]; ok && p != m.Partition {
			t.Errorf("%s in partitions %d and %d", key, p, m.Partition)
		}
		partitionOf[key] = m.Partition
		// Within a partition records arrive in offset order; each
		// customer's sequence must be increasing.
		var seq int
		if _, err := fmt.Sscanf(strings.TrimPrefix(rec.Event.ID, rec.Event.CustomerID+"-"), "%d", &seq); err != nil {
			t.Fatalf("id %q: %v", rec.Event.ID, err)
		}
		if last, ok := lastSeq[key]; ok && seq <= last {
			t.Errorf("%s: event %d after %d", key, seq, last)
		}
		lastSeq[key] = seq
	}
	if orgs["acme"] != total-1 || orgs["globex"] != 1 {
		t.Errorf("records per org %v", orgs)
	}
	used := map[int]bool{}
	for _, p := range partitionOf {
		used[p] = true
	}
	if len(used) < 2 {
		t.Errorf("8 customers all hashed to partitions %v", used)
	}

	code, body := get(t, base+"/readyz")
	if code != 200 || !strings.Contains(body, `"kafka":"ok"`) {
		t.Errorf("readyz %d %s", code, body)
	}
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{
		fmt.Sprintf("tally_ingest_events_accepted_total %d", total),
		`tally_ingest_events_rejected_total{reason="invalid_type"} 1`,
		`tally_ingest_http_requests_total{code="202",route="/api/v1/events"} 7`,
		"tally_ingest_kafka_produce_duration_seconds_count 7",
		"tally_ingest_request_events_count 7",
		"tally_ingest_kafka_produce_errors_total 0",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

package devstack

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/internal/kafkaclient"
)

// An accepted event that was never metered (the aggregator or ClickHouse
// was down for days) must outlive any retention: `tally all` creates the
// event topic without retention and relies on trimming what the aggregator
// committed. Dead letters keep their retention.
func TestUncommittedEventsOutliveRetention(t *testing.T) {
	b := startBroker(t, BrokerOptions{Dir: t.TempDir(), Port: freePort(t), RetentionMs: time.Hour.Milliseconds()})
	cfg := kafkaclient.Config{Brokers: b.Addrs(), Topic: "events", DeadLetterTopic: "dead", Partitions: 1, ReplicationFactor: 1, CreateTopics: true}
	if err := cfg.EnsureTopics(context.Background(), TopicConfigs(time.Hour, 1<<30)); err != nil {
		t.Fatal(err)
	}
	twoDaysAgo := time.Now().Add(-48 * time.Hour)
	for _, topic := range []string{"events", "dead"} {
		w := &kafka.Writer{Addr: kafka.TCP(b.Addrs()...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
		msgs := make([]kafka.Message, 10)
		for i := range msgs {
			msgs[i] = kafka.Message{Value: fmt.Appendf(nil, "old-%d", i), Time: twoDaysAgo}
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	b.trimOnce(context.Background(), "events", "aggregator")
	if start := logStart(t, b, "events"); start != 0 {
		t.Errorf("event topic starts at %d after retention: uncommitted events were dropped", start)
	}
	if start := logStart(t, b, "dead"); start != 10 {
		t.Errorf("dead-letter topic starts at %d, want 10: its retention was not applied", start)
	}
}

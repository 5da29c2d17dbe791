package kafkaclient

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/testenv"
)

func TestEnsureTopicsAndPing(t *testing.T) {
	brokers := testenv.Kafka(t)
	cfg := Config{Brokers: brokers, Topic: "events", DeadLetterTopic: "dead", Partitions: 3, ReplicationFactor: 1, CreateTopics: true}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := cfg.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded before the topic exists")
	}
	if err := cfg.EnsureTopics(ctx, TopicConfigs{DeadLetters: map[string]string{"retention.ms": "3600000"}}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.EnsureTopics(ctx, TopicConfigs{}); err != nil {
		t.Fatalf("second EnsureTopics: %v", err)
	}
	if err := cfg.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// Readiness probes call Ping every few seconds for the life of the
// process: it must not leave connections or goroutines behind.
func TestPingDoesNotLeak(t *testing.T) {
	brokers := testenv.Kafka(t)
	cfg := Config{Brokers: brokers, Topic: "events", DeadLetterTopic: "dead", Partitions: 1, ReplicationFactor: 1, CreateTopics: true}
	ctx := context.Background()
	if err := cfg.EnsureTopics(ctx, TopicConfigs{}); err != nil {
		t.Fatal(err)
	}
	_ = cfg.Ping(ctx)
	before := runtime.NumGoroutine()
	for range 100 {
		if err := cfg.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before+20 {
		t.Fatalf("goroutines grew from %d to %d over 100 pings", before, after)
	}
}

func TestValidate(t *testing.T) {
	cfg := Config{Topic: "a", DeadLetterTopic: "a", SASLMechanism: "GSSAPI"}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"kafka.brokers", "must differ", "partitions", "sasl-mechanism"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

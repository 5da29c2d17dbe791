package ingest

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if err := fs.Parse([]string{"-ingest.kafka-batch-timeout=2ms", "-ingest.max-events=500"}); err != nil {
		t.Fatal(err)
	}
	if cfg.KafkaBatchTimeout != 2*time.Millisecond || cfg.MaxEvents != 500 {
		t.Errorf("parsed %+v", cfg)
	}

	if cfg.KafkaBatchTimeout = 0; cfg.Validate() != nil {
		t.Errorf("ingest.kafka-batch-timeout=0 (no linger) refused: %v", cfg.Validate())
	}
	if cfg.KafkaBatchTimeout = -time.Millisecond; cfg.Validate() == nil {
		t.Error("a negative ingest.kafka-batch-timeout accepted")
	}

	bad := Config{ProduceTimeout: time.Minute, KafkaBatchTimeout: time.Minute, MaxEventAge: -1}
	err := bad.Validate()
	if err == nil {
		t.Fatal("zero config accepted")
	}
	for _, flagName := range []string{
		"ingest.listen-addr", "ingest.max-body-bytes", "ingest.max-events", "ingest.max-event-age",
		"ingest.produce-timeout", "ingest.kafka-batch-timeout", "ingest.kafka-batch-size", "ingest.kafka-batch-bytes",
	} {
		if !strings.Contains(err.Error(), flagName) {
			t.Errorf("error does not name %s: %v", flagName, err)
		}
	}
}

func TestNewRequiresKeysAndKafka(t *testing.T) {
	_, err := New(testConfig(), Deps{})
	if err == nil || !strings.Contains(err.Error(), "API key") || !strings.Contains(err.Error(), "Kafka") {
		t.Errorf("New without deps: %v", err)
	}
}

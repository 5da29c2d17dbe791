// Package kafkaclient holds the Kafka settings shared by ingest (which
// produces events) and the aggregator (which consumes them and produces
// dead letters), and builds segmentio/kafka-go clients from them.
package kafkaclient

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/tally-oss/tally/internal/config"
)

// Config is how to reach Kafka and which topics Tally uses.
type Config struct {
	Brokers         config.StringList
	Topic           string
	DeadLetterTopic string
	// Partitions, ReplicationFactor and MinInsyncReplicas are used only
	// when Tally creates a missing topic (CreateTopics); production topics
	// are usually created by the platform team, and Ping checks the event
	// topic's replication as it is (topicsafety.go). MinInsyncReplicas 0
	// means min(2, ReplicationFactor).
	Partitions        int
	ReplicationFactor int
	MinInsyncReplicas int
	CreateTopics      bool
	TLS               bool
	TLSSkipVerify     bool
	SASLMechanism     string
	SASLUser          string
	SASLPassword      string
}

// RegisterFlags registers the kafka.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Brokers = config.StringList{"127.0.0.1:9092"}
	fs.Var(&c.Brokers, "kafka.brokers", "Kafka seed brokers, comma-separated")
	fs.StringVar(&c.Topic, "kafka.topic", "tally-events", "topic of accepted usage events")
	fs.StringVar(&c.DeadLetterTopic, "kafka.dead-letter-topic", "tally-events-dead-letter", "topic of events that cannot be metered")
	fs.IntVar(&c.Partitions, "kafka.partitions", 6, "partitions of the event topic when Tally creates it; the aggregator scales up to this many consumers")
	fs.IntVar(&c.ReplicationFactor, "kafka.replication-factor", 1, "replication factor of topics Tally creates")
	fs.IntVar(&c.MinInsyncReplicas, "kafka.min-insync-replicas", 0, "min.insync.replicas of topics Tally creates: replicas that must have a record before it is acknowledged; with a kafka.replication-factor of 2 or more, 2 to the replication factor (equal to it: any broker down stops writes) (0: min(2, kafka.replication-factor))")
	fs.BoolVar(&c.CreateTopics, "kafka.create-topics", true, "create the topics at start when they are missing")
	fs.BoolVar(&c.TLS, "kafka.tls", false, "connect to Kafka with TLS")
	fs.BoolVar(&c.TLSSkipVerify, "kafka.tls-skip-verify", false, "with TLS, do not verify broker certificates (testing only)")
	fs.StringVar(&c.SASLMechanism, "kafka.sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: none)")
	fs.StringVar(&c.SASLUser, "kafka.sasl-user", "", "SASL user name")
	fs.StringVar(&c.SASLPassword, "kafka.sasl-password", "", "SASL password")
}

// Validate reports every problem with the settings.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka.brokers is required"))
	}
	if c.Topic == "" || c.DeadLetterTopic == "" {
		errs = append(errs, errors.New("kafka.topic and kafka.dead-letter-topic are required"))
	}
	if c.Topic == c.DeadLetterTopic {
		errs = append(errs, errors.New("kafka.dead-letter-topic must differ from kafka.topic"))
	}
	if c.Partitions < 1 || c.ReplicationFactor < 1 {
		errs = append(errs, errors.New("kafka.partitions and kafka.replication-factor must be at least 1"))
	}
	switch {
	case c.MinInsyncReplicas < 0 || c.MinInsyncReplicas > max(c.ReplicationFactor, 1):
		// More would refuse every produce: acks=all could never be met.
		errs = append(errs, fmt.Errorf("kafka.min-insync-replicas must be between 0 (automatic) and kafka.replication-factor (%d), got %d",
			c.ReplicationFactor, c.MinInsyncReplicas))
	case c.MinInsyncReplicas == 1 && c.ReplicationFactor >= 2:
		// Readiness would refuse the topic (unsafeTopic). Equal to the
		// replication factor is allowed: no loss, but any broker down
		// stops writes.
		errs = append(errs, fmt.Errorf("kafka.min-insync-replicas 1 with kafka.replication-factor %d: Kafka would acknowledge a record "+
			"that only the leader has once the other replicas fall behind; use 2 to %d, or 0 (automatic: 2)", c.ReplicationFactor, c.ReplicationFactor))
	}
	if _, err := c.mechanism(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Config) mechanism() (sasl.Mechanism, error) {
	switch c.SASLMechanism {
	case "":
		return nil, nil
	case "PLAIN":
		return plain.Mechanism{Username: c.SASLUser, Password: c.SASLPassword}, nil
	case "SCRAM-SHA-256":
		return scram.Mechanism(scram.SHA256, c.SASLUser, c.SASLPassword)
	case "SCRAM-SHA-512":
		return scram.Mechanism(scram.SHA512, c.SASLUser, c.SASLPassword)
	}
	return nil, fmt.Errorf("kafka.sasl-mechanism %q must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism)
}

func (c *Config) tlsConfig() *tls.Config {
	if !c.TLS {
		return nil
	}
	return &tls.Config{InsecureSkipVerify: c.TLSSkipVerify} //nolint:gosec // opt-in, for testing
}

// Transport returns a kafka-go transport for Writers and Clients.
func (c *Config) Transport() *kafka.Transport {
	mech, _ := c.mechanism() // checked by Validate
	return &kafka.Transport{TLS: c.tlsConfig(), SASL: mech, DialTimeout: 5 * time.Second, ClientID: "tally"}
}

// Dialer returns a kafka-go dialer for Readers and consumer groups.
func (c *Config) Dialer() *kafka.Dialer {
	mech, _ := c.mechanism()
	return &kafka.Dialer{Timeout: 5 * time.Second, DualStack: true, TLS: c.tlsConfig(), SASLMechanism: mech, ClientID: "tally"}
}

// TopicConfigs are topic-level settings (retention.ms, retention.bytes,
// ...) for topics EnsureTopics creates; nil keeps the cluster's defaults.
// The event topic always gets eventTopicSafety on top (no retention), and
// both topics get min.insync.replicas from the Config.
type TopicConfigs struct {
	Events      map[string]string
	DeadLetters map[string]string
}

// EnsureTopics creates the event and dead-letter topics when they are
// missing (if CreateTopics is set). Existing topics are left as they are;
// Ping refuses an existing event topic whose retention could delete
// records before they are metered (topicsafety.go).
func (c *Config) EnsureTopics(ctx context.Context, configs TopicConfigs) error {
	if !c.CreateTopics {
		return nil
	}
	// A Transport keeps connections (and goroutines) until closed.
	tr := c.Transport()
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(c.Brokers...), Transport: tr, Timeout: 10 * time.Second}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return fmt.Errorf("kafka metadata: %w", err)
	}
	// Kafka answers a replication factor above the broker count with a bare
	// INVALID_REPLICATION_FACTOR; say which flag and how many brokers.
	if c.ReplicationFactor > len(meta.Brokers) {
		return fmt.Errorf("create kafka topics: kafka.replication-factor %d is more than the %d broker(s) of the cluster at %v",
			c.ReplicationFactor, len(meta.Brokers), []string(c.Brokers))
	}
	existing := map[string]bool{}
	for _, t := range meta.Topics {
		if t.Error == nil {
			existing[t.Name] = true
		}
	}
	var topics []kafka.TopicConfig
	for name, entries := range map[string]map[string]string{c.Topic: c.eventTopicConfigs(configs.Events), c.DeadLetterTopic: c.withMinInsync(configs.DeadLetters)} {
		if existing[name] {
			continue
		}
		tc := kafka.TopicConfig{Topic: name, NumPartitions: c.Partitions, ReplicationFactor: c.ReplicationFactor}
		for _, k := range slices.Sorted(maps.Keys(entries)) {
			tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: entries[k]})
		}
		topics = append(topics, tc)
	}
	if len(topics) == 0 {
		return nil
	}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("create kafka topics: %w", err)
	}
	var errs []error
	for name, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Ping checks that a broker answers, the event topic exists, its
// settings cannot delete records before they are metered, and a record it
// acknowledges is on two brokers when the cluster has several; it is the
// readiness check of ingest and the aggregator.
func (c *Config) Ping(ctx context.Context) error {
	tr := c.Transport()
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(c.Brokers...), Transport: tr, Timeout: 2 * time.Second}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{c.Topic}})
	if err != nil {
		return fmt.Errorf("kafka %v: %w", []string(c.Brokers), err)
	}
	for _, t := range meta.Topics {
		if t.Name == c.Topic {
			if t.Error != nil {
				return fmt.Errorf("kafka topic %s: %w", c.Topic, t.Error)
			}
			if len(t.Partitions) == 0 {
				return fmt.Errorf("kafka topic %s has no partitions", c.Topic)
			}
			return c.checkEventTopic(ctx, client, replicationOf(len(meta.Brokers), t))
		}
	}
	return fmt.Errorf("kafka topic %s does not exist", c.Topic)
}

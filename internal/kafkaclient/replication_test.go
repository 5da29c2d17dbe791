package kafkaclient

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tally-oss/tally/internal/testenv"
)

// What kfake can and cannot show here: with NumBrokers(3) it spreads
// partition leadership over three brokers, validates the replication
// factor against the broker count, and reports each partition with that
// many replicas, all in sync; it keeps min.insync.replicas as a topic
// setting and returns it from DescribeConfigs. It does not replicate
// records (one copy, at the leader) and does not enforce
// min.insync.replicas: acks=all is answered by the leader alone, and no
// produce ever fails with NOT_ENOUGH_REPLICAS. So these tests check that
// Tally creates the topics it is configured to create, and that the
// pipeline's clients work against several brokers; Kafka's own enforcement
// is Kafka's to test.

// TestEnsureTopicsReplicated creates both topics on a three-broker
// cluster with replication factor 3: every partition has three replicas,
// min.insync.replicas is 2 by default and the flag's value otherwise, and
// records produced with acks=all land on partitions led by different
// brokers.
func TestEnsureTopicsReplicated(t *testing.T) {
	for _, tc := range []struct{ flag, want int }{{0, 2}, {3, 3}, {2, 2}} {
		t.Run(fmt.Sprintf("min-insync-%d", tc.flag), func(t *testing.T) {
			brokers := testenv.Kafka(t, kfake.NumBrokers(3))
			cfg := Config{Brokers: brokers, Topic: "events", DeadLetterTopic: "dead", Partitions: 6,
				ReplicationFactor: 3, MinInsyncReplicas: tc.flag, CreateTopics: true}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			if err := cfg.EnsureTopics(ctx, TopicConfigs{}); err != nil {
				t.Fatal(err)
			}
			if err := cfg.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
			meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{"events", "dead"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(meta.Brokers) != 3 {
				t.Fatalf("metadata lists %d brokers, want 3", len(meta.Brokers))
			}
			leaders := map[int]bool{}
			for _, topic := range meta.Topics {
				if len(topic.Partitions) != 6 {
					t.Errorf("topic %s has %d partitions, want 6", topic.Name, len(topic.Partitions))
				}
				for _, p := range topic.Partitions {
					leaders[p.Leader.ID] = true
					if len(p.Replicas) != 3 {
						t.Errorf("topic %s partition %d has %d replicas, want 3", topic.Name, p.ID, len(p.Replicas))
					}
				}
			}
			if len(leaders) < 2 {
				t.Errorf("all partitions led by %v; want leadership spread over the brokers", leaders)
			}
			for _, topic := range []string{"events", "dead"} {
				if got := topicSetting(t, client, topic, "min.insync.replicas"); got != fmt.Sprint(tc.want) {
					t.Errorf("topic %s min.insync.replicas = %q, want %d", topic, got, tc.want)
				}
			}
			produceAllPartitions(t, cfg, 600)
		})
	}
}

// TestEnsureTopicsReplicationFactorAboveBrokers: a replication factor the
// cluster cannot place fails with the flag's name and the broker count,
// not Kafka's bare INVALID_REPLICATION_FACTOR.
func TestEnsureTopicsReplicationFactorAboveBrokers(t *testing.T) {
	brokers := testenv.Kafka(t, kfake.NumBrokers(3))
	cfg := Config{Brokers: brokers, Topic: "events", DeadLetterTopic: "dead", Partitions: 1, ReplicationFactor: 4, CreateTopics: true}
	err := cfg.EnsureTopics(t.Context(), TopicConfigs{})
	if err == nil || !strings.Contains(err.Error(), "kafka.replication-factor 4") || !strings.Contains(err.Error(), "3 broker") {
		t.Fatalf("EnsureTopics with replication factor 4 on 3 brokers = %v, want an error naming the flag and the 3 brokers", err)
	}
}

// topicSetting reads one setting of a topic with DescribeConfigs.
func topicSetting(t *testing.T, client *kafka.Client, topic, name string) string {
	t.Helper()
	resp, err := client.DescribeConfigs(t.Context(), &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{name},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			t.Fatalf("describe %s: %v", topic, r.Error)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName == name {
				return e.ConfigValue
			}
		}
	}
	return ""
}

// produceAllPartitions writes n records to the event topic with acks=all
// through the config's transport, as ingest does, and checks that the
// partitions' end offsets add up to n.
func produceAllPartitions(t *testing.T, cfg Config, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tr := cfg.Transport()
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.Topic, Transport: tr,
		RequiredAcks: kafka.RequireAll, Balancer: &kafka.RoundRobin{}, BatchTimeout: time.Millisecond}
	defer w.Close()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce with acks=all to 3 brokers: %v", err)
	}
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: tr, Timeout: 10 * time.Second}
	var reqs []kafka.OffsetRequest
	for p := range cfg.Partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{cfg.Topic: reqs}})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, p := range resp.Topics[cfg.Topic] {
		if p.Error != nil {
			t.Fatalf("partition %d: %v", p.Partition, p.Error)
		}
		total += p.LastOffset
	}
	if total != int64(n) {
		t.Fatalf("end offsets add up to %d, want %d", total, n)
	}
}

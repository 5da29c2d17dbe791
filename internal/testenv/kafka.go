package testenv

import (
	"errors"
	"net"
	"strconv"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Kafka starts an in-process Kafka-protocol broker (franz-go's kfake) for
// one test and returns its seed broker addresses. It runs one broker, so
// RequireAll acks mean "acknowledged by the only replica" as in a real
// single-node cluster; opts are applied after that default and can override
// it (kfake.NumBrokers(3), kfake.SeedTopics(...), kfake.DataDir(...)).
// Topics are not created automatically; use CreateTopic.
func Kafka(t testing.TB, opts ...kfake.Opt) []string {
	t.Helper()
	cluster, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake broker: %v", err)
	}
	t.Cleanup(cluster.Close)
	return cluster.ListenAddrs()
}

// KafkaBrokers starts an in-process Kafka cluster of n brokers for one
// test (kfake.NumBrokers(n)): partition leadership is spread over the
// brokers, so clients talk to several of them, as against a real cluster.
// kfake keeps one copy of each record and does not enforce
// min.insync.replicas (internal/kafkaclient's replication tests say more).
func KafkaBrokers(t testing.TB, n int, opts ...kfake.Opt) []string {
	t.Helper()
	return Kafka(t, append([]kfake.Opt{kfake.NumBrokers(n)}, opts...)...)
}

// CreateTopic creates topic with the given number of partitions, the way
// the production code does it: with kafka-go, on the controller broker
// (kfake, like Kafka, answers NOT_CONTROLLER to any other broker), and
// without retention, which readiness requires of the event topic
// (kafkaclient.ErrUnsafeEventTopic). On several brokers it is replicated
// as a production topic would be: replication factor min(3, brokers) and
// min.insync.replicas min(2, replication factor).
func CreateTopic(t testing.TB, brokers []string, topic string, partitions int) {
	t.Helper()
	if err := createTopic(brokers, topic, partitions); err != nil {
		t.Fatalf("create topic %q: %v", topic, err)
	}
}

func createTopic(brokers []string, topic string, partitions int) error {
	if len(brokers) == 0 {
		return errors.New("no brokers")
	}
	conn, err := kafka.Dial("tcp", brokers[0])
	if err != nil {
		return err
	}
	defer conn.Close()
	controller, err := conn.Controller()
	if err != nil {
		return err
	}
	ctrl, err := kafka.Dial("tcp", net.JoinHostPort(controller.Host, strconv.Itoa(controller.Port)))
	if err != nil {
		return err
	}
	defer ctrl.Close()
	all, err := conn.Brokers()
	if err != nil {
		return err
	}
	rf := max(1, min(3, len(all)))
	return ctrl.CreateTopics(kafka.TopicConfig{
		Topic:             topic,
		NumPartitions:     partitions,
		ReplicationFactor: rf,
		ConfigEntries: []kafka.ConfigEntry{
			{ConfigName: "retention.ms", ConfigValue: "-1"},
			{ConfigName: "retention.bytes", ConfigValue: "-1"},
			{ConfigName: "min.insync.replicas", ConfigValue: strconv.Itoa(min(2, rf))},
		},
	})
}

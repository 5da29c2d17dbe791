package kafkaclient

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tally-oss/tally/internal/testenv"
)

// describe returns the named configs of a topic as the broker reports them.
func describe(t *testing.T, brokers []string, topic string, names ...string) map[string]string {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second}
	resp, err := client.DescribeConfigs(t.Context(), &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{
		{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: names},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range resp.Resources {
		if r.Error != nil {
			t.Fatalf("describe %s: %v", topic, r.Error)
		}
		for _, e := range r.ConfigEntries {
			got[e.ConfigName] = e.ConfigValue
		}
	}
	return got
}

// createWithConfigs creates a topic the way a platform team might: with
// the cluster's defaults unless entries say otherwise.
func createWithConfigs(t *testing.T, brokers []string, topic string, entries ...kafka.ConfigEntry) {
	t.Helper()
	createReplicated(t, brokers, topic, 1, entries...)
}

// createReplicated is createWithConfigs with replicationFactor replicas
// of each partition.
func createReplicated(t *testing.T, brokers []string, topic string, replicationFactor int, entries ...kafka.ConfigEntry) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second}
	resp, err := client.CreateTopics(t.Context(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: topic, NumPartitions: 2, ReplicationFactor: replicationFactor, ConfigEntries: entries},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Errors[topic]; err != nil {
		t.Fatal(err)
	}
}

// Defect 2: the event topic Tally creates must keep every record until it
// is deleted on purpose; the cluster default (7 days on Apache Kafka and
// on kfake) would expire accepted events that were never metered.
func TestEnsureTopicsCreatesEventTopicWithoutRetention(t *testing.T) {
	brokers := testenv.Kafka(t)
	cfg := Config{Brokers: brokers, Topic: "events", DeadLetterTopic: "dead", Partitions: 3, ReplicationFactor: 1, CreateTopics: true}
	if err := cfg.EnsureTopics(t.Context(), TopicConfigs{DeadLetters: map[string]string{"retention.ms": "3600000"}}); err != nil {
		t.Fatal(err)
	}
	got := describe(t, brokers, "events", "retention.ms", "retention.bytes", "min.insync.replicas")
	want := map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "1"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("event topic %s = %q, want %q", k, got[k], v)
		}
	}
	if got := describe(t, brokers, "dead", "retention.ms")["retention.ms"]; got != "3600000" {
		t.Errorf("dead-letter topic retention.ms = %q, want the configured 3600000", got)
	}
	if err := cfg.Ping(t.Context()); err != nil {
		t.Errorf("Ping on the topic Tally created: %v", err)
	}
	// Settings given for the event topic cannot turn retention back on.
	cfg.Topic = "events-2"
	if err := cfg.EnsureTopics(t.Context(), TopicConfigs{Events: map[string]string{"retention.ms": "1000"}}); err != nil {
		t.Fatal(err)
	}
	if got := describe(t, brokers, "events-2", "retention.ms")["retention.ms"]; got != "-1" {
		t.Errorf("event topic with retention.ms=1000 asked for: %q, want -1", got)
	}
}

// Defect 2: an existing event topic whose retention can delete records
// that were never consumed fails Ping, the readiness check of ingest and
// the aggregator, with a message that says what to change.
func TestPingRefusesEventTopicThatCanExpire(t *testing.T) {
	brokers := testenv.Kafka(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name    string
		entries []kafka.ConfigEntry
		want    []string
	}{
		{"cluster default", nil, []string{"retention.ms=604800000", "retention.ms=-1"}},
		{"size retention", []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "-1"}, {ConfigName: "retention.bytes", ConfigValue: "1073741824"}},
			[]string{"retention.bytes=1073741824"}},
		{"compaction", []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "-1"}, {ConfigName: "cleanup.policy", ConfigValue: "compact"}},
			[]string{"cleanup.policy=compact"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := "events-" + strings.ReplaceAll(tc.name, " ", "-")
			createWithConfigs(t, brokers, topic, tc.entries...)
			cfg := Config{Brokers: brokers, Topic: topic, DeadLetterTopic: "dead", Partitions: 3, ReplicationFactor: 1, CreateTopics: true}
			// EnsureTopics leaves an existing topic as it is ...
			if err := cfg.EnsureTopics(ctx, TopicConfigs{}); err != nil {
				t.Fatal(err)
			}
			// ... and readiness refuses it.
			err := cfg.Ping(ctx)
			if err == nil || !errors.Is(err, ErrUnsafeEventTopic) {
				t.Fatalf("Ping = %v, want ErrUnsafeEventTopic", err)
			}
			for _, w := range append(tc.want, topic) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Ping error %q does not mention %q", err, w)
				}
			}
		})
	}
	// Fixed on the broker, it is accepted without a restart.
	alterTopic(t, brokers, "events-cluster-default",
		kafka.AlterConfigRequestConfig{Name: "retention.ms", Value: "-1"}, kafka.AlterConfigRequestConfig{Name: "retention.bytes", Value: "-1"})
	cfg := Config{Brokers: brokers, Topic: "events-cluster-default", DeadLetterTopic: "dead", Partitions: 3, ReplicationFactor: 1}
	if err := cfg.Ping(ctx); err != nil {
		t.Errorf("Ping after retention.ms=-1 and retention.bytes=-1: %v", err)
	}
}

func TestMinInsyncReplicas(t *testing.T) {
	for _, tc := range []struct {
		rf, flag, want int
		invalid        bool
	}{
		{rf: 1, want: 1},
		{rf: 2, want: 2},
		{rf: 3, want: 2},
		{rf: 3, flag: 3, want: 3},
		{rf: 1, flag: 1, want: 1},
		{rf: 2, flag: 2, want: 2},
		// Review 8a F9: with replicas, 1 acknowledges a record that only
		// the leader has.
		{rf: 3, flag: 1, invalid: true},
		{rf: 2, flag: 1, invalid: true},
		{rf: 3, flag: 4, invalid: true},
		{rf: 3, flag: -1, invalid: true},
	} {
		cfg := Config{Brokers: []string{"b:9092"}, Topic: "a", DeadLetterTopic: "b", Partitions: 1, ReplicationFactor: tc.rf, MinInsyncReplicas: tc.flag}
		err := cfg.Validate()
		if tc.invalid {
			if err == nil || !strings.Contains(err.Error(), "kafka.min-insync-replicas") {
				t.Errorf("rf %d, min-insync %d: Validate = %v, want an error naming the flag", tc.rf, tc.flag, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("rf %d, min-insync %d: %v", tc.rf, tc.flag, err)
		}
		if got := cfg.minInsyncReplicas(); got != tc.want {
			t.Errorf("rf %d, min-insync %d: effective %d, want %d", tc.rf, tc.flag, got, tc.want)
		}
	}
}

// An unclean leader election lets a replica that missed acknowledged
// records become leader and truncate them: readiness refuses an event
// topic that allows it (a setting a broker does not report is Kafka's
// default, false).
func TestUncleanLeaderElectionIsUnsafe(t *testing.T) {
	safe := map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
	for _, tc := range []struct {
		value  string // "": not reported
		unsafe bool
	}{{"", false}, {"false", false}, {"true", true}, {"TRUE", true}} {
		settings := maps.Clone(safe)
		if tc.value != "" {
			settings["unclean.leader.election.enable"] = tc.value
		}
		err := unsafeTopic("events", settings, topicReplication{brokers: 1, fewest: 1, most: 1})
		if !tc.unsafe {
			if err != nil {
				t.Errorf("unclean.leader.election.enable %q: %v, want accepted", tc.value, err)
			}
			continue
		}
		if !errors.Is(err, ErrUnsafeEventTopic) || !strings.Contains(err.Error(), "unclean.leader.election.enable="+tc.value) ||
			!strings.Contains(err.Error(), "unclean.leader.election.enable=false") {
			t.Errorf("unclean.leader.election.enable %q: %v, want ErrUnsafeEventTopic naming the setting and its fix", tc.value, err)
		}
	}
}

// Ping asks the broker for unclean.leader.election.enable (kfake does
// not know the setting; its control hook answers as Apache Kafka would
// for a topic that allows unclean elections).
func TestPingRefusesUncleanLeaderElection(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()
	cfg := Config{Brokers: brokers, Topic: "events", DeadLetterTopic: "dead", Partitions: 1, ReplicationFactor: 1, CreateTopics: true}
	if err := cfg.EnsureTopics(t.Context(), TopicConfigs{}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Ping(t.Context()); err != nil {
		t.Fatalf("Ping before: %v", err)
	}
	var asked bool
	cluster.ControlKey(int16(kmsg.DescribeConfigs), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		dreq := req.(*kmsg.DescribeConfigsRequest)
		resp := dreq.ResponseKind().(*kmsg.DescribeConfigsResponse)
		for _, r := range dreq.Resources {
			rr := kmsg.NewDescribeConfigsResponseResource()
			rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
			for _, name := range r.ConfigNames {
				value := map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete",
					"unclean.leader.election.enable": "true"}[name]
				if name == "unclean.leader.election.enable" {
					asked = true
				}
				e := kmsg.NewDescribeConfigsResponseResourceConfig()
				e.Name, e.Value = name, &value
				rr.Configs = append(rr.Configs, e)
			}
			resp.Resources = append(resp.Resources, rr)
		}
		return resp, nil, true
	})
	err = cfg.Ping(t.Context())
	if !asked {
		t.Error("Ping did not ask for unclean.leader.election.enable")
	}
	if !errors.Is(err, ErrUnsafeEventTopic) || !strings.Contains(err.Error(), "unclean.leader.election.enable=true") {
		t.Errorf("Ping = %v, want ErrUnsafeEventTopic naming unclean.leader.election.enable=true", err)
	}
}

// Review 8a F9: a platform team's topic with three replicas and the
// broker's default min.insync.replicas (1) acknowledges acks=all with the
// leader alone once the other two fall out of sync, so ingest's 202 would
// mean one disk; a topic with one replica on a cluster of several brokers
// is one disk always. Readiness refuses both, naming the setting, and
// accepts a fixed topic without a restart. (kfake reports replicas and
// min.insync.replicas as Kafka does; it does not enforce them.)
func TestPingRefusesUnderReplicatedEventTopic(t *testing.T) {
	brokers := testenv.KafkaBrokers(t, 3)
	ctx := t.Context()
	noRetention := []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "-1"}, {ConfigName: "retention.bytes", ConfigValue: "-1"}}
	minInsync := func(n string) []kafka.ConfigEntry {
		return append(slices.Clone(noRetention), kafka.ConfigEntry{ConfigName: "min.insync.replicas", ConfigValue: n})
	}
	for _, tc := range []struct {
		name    string
		rf      int
		entries []kafka.ConfigEntry
		want    []string // in the error; none: accepted
	}{
		{"rf3-min-insync-1", 3, minInsync("1"), []string{"min.insync.replicas=1 with 3 replicas", "min.insync.replicas=2"}},
		{"rf3-cluster-default", 3, noRetention, []string{"min.insync.replicas=1 with 3 replicas", "min.insync.replicas=2"}},
		{"rf2-min-insync-1", 2, minInsync("1"), []string{"min.insync.replicas=1 with 2 replicas"}},
		{"rf1-on-3-brokers", 1, noRetention, []string{"1 replica", "3 brokers", "kafka-reassign-partitions.sh"}},
		{"rf3-min-insync-2", 3, minInsync("2"), nil},
		{"rf3-min-insync-3", 3, minInsync("3"), nil},
		{"rf2-min-insync-2", 2, minInsync("2"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := "events-" + tc.name
			createReplicated(t, brokers, topic, tc.rf, tc.entries...)
			cfg := Config{Brokers: brokers, Topic: topic, DeadLetterTopic: "dead", Partitions: 2, ReplicationFactor: 3}
			err := cfg.Ping(ctx)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Ping = %v, want accepted", err)
				}
				return
			}
			if !errors.Is(err, ErrUnsafeEventTopic) {
				t.Fatalf("Ping = %v, want ErrUnsafeEventTopic", err)
			}
			for _, w := range append(tc.want, topic) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Ping error %q does not mention %q", err, w)
				}
			}
		})
	}
	// Fixed on the broker, it is accepted without a restart.
	alterTopic(t, brokers, "events-rf3-min-insync-1",
		kafka.AlterConfigRequestConfig{Name: "retention.ms", Value: "-1"}, kafka.AlterConfigRequestConfig{Name: "retention.bytes", Value: "-1"},
		kafka.AlterConfigRequestConfig{Name: "min.insync.replicas", Value: "2"})
	cfg := Config{Brokers: brokers, Topic: "events-rf3-min-insync-1", DeadLetterTopic: "dead", Partitions: 2, ReplicationFactor: 3}
	if err := cfg.Ping(ctx); err != nil {
		t.Errorf("Ping after min.insync.replicas=2: %v", err)
	}
}

// A development cluster of one broker has one replica of everything:
// that is no reason to refuse its topic, whatever min.insync.replicas
// says (the broker's default, 1).
func TestPingAcceptsOneReplicaOnOneBroker(t *testing.T) {
	brokers := testenv.KafkaBrokers(t, 1)
	createReplicated(t, brokers, "events", 1,
		kafka.ConfigEntry{ConfigName: "retention.ms", ConfigValue: "-1"}, kafka.ConfigEntry{ConfigName: "retention.bytes", ConfigValue: "-1"})
	cfg := Config{Brokers: brokers, Topic: "events", DeadLetterTopic: "dead", Partitions: 2, ReplicationFactor: 1}
	if err := cfg.Ping(t.Context()); err != nil {
		t.Fatalf("Ping on one broker, replication factor 1: %v", err)
	}
}

// The replication rules on what the broker reports, including what a
// three-broker kfake cannot show: partitions of one topic with different
// replica counts, and a min.insync.replicas the broker leaves out.
func TestUnderReplicationIsUnsafe(t *testing.T) {
	safe := map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
	for _, tc := range []struct {
		name      string
		minInsync string // "": not reported (Kafka's default, 1)
		rep       topicReplication
		want      string // in the error; "": accepted
	}{
		{"one broker", "1", topicReplication{brokers: 1, fewest: 1, most: 1}, ""},
		{"one broker, not reported", "", topicReplication{brokers: 1, fewest: 1, most: 1}, ""},
		{"rf3 min-insync 2", "2", topicReplication{brokers: 5, fewest: 3, most: 3}, ""},
		{"rf2 min-insync 2", "2", topicReplication{brokers: 2, fewest: 2, most: 2}, ""},
		{"rf3 not reported", "", topicReplication{brokers: 3, fewest: 3, most: 3}, "min.insync.replicas=1 with 3 replicas"},
		{"rf3 min-insync 1", "1", topicReplication{brokers: 3, fewest: 3, most: 3}, "min.insync.replicas=1 with 3 replicas"},
		{"rf1 on 2 brokers", "1", topicReplication{brokers: 2, fewest: 1, most: 1, partition: 4}, "partition 4 has 1 replica"},
		{"mixed", "2", topicReplication{brokers: 3, fewest: 1, most: 3, partition: 2}, "partition 2 has 1 replica"},
		{"not a number", "two", topicReplication{brokers: 3, fewest: 3, most: 3}, "min.insync.replicas=two"},
	} {
		settings := maps.Clone(safe)
		if tc.minInsync != "" {
			settings["min.insync.replicas"] = tc.minInsync
		}
		err := unsafeTopic("events", settings, tc.rep)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v, want accepted", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrUnsafeEventTopic) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrUnsafeEventTopic with %q", tc.name, err, tc.want)
		}
	}
}

// alterTopic sets configs of topic on the brokers, as an operator fixing
// a topic would, failing the test on any error.
func alterTopic(t *testing.T, brokers []string, topic string, configs ...kafka.AlterConfigRequestConfig) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second}
	resp, err := client.AlterConfigs(t.Context(), &kafka.AlterConfigsRequest{Resources: []kafka.AlterConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, Configs: configs,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range resp.Errors {
		if err != nil {
			t.Fatal(err)
		}
	}
}

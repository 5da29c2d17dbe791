package kafkaclient

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go"
)

// ErrUnsafeEventTopic is returned by Ping for an event topic whose
// settings let Kafka delete records on its own: with time or size
// retention, events that ingest acknowledged (202) but the aggregator has
// not metered yet (ClickHouse down for a week, a stuck partition, an
// aggregator scaled to zero) would expire unmetered; with compaction, only
// the latest record of each key (organization and customer) would survive.
// With unclean.leader.election.enable=true, a replica that missed
// acknowledged records can become leader and truncate them away, and the
// aggregator's committed offset can then lie beyond the log's end
// (aggregator/position.go halts such a partition).
// With min.insync.replicas=1 on a replicated topic, or one replica on a
// cluster of several brokers, a record acknowledged by one broker is lost
// with that broker's disk (unsafeTopic).
// Readiness stays red, with the setting to change, until the topic is
// fixed on the broker; no restart is needed. Tally does not alter an
// existing topic itself: it belongs to whoever created it.
var ErrUnsafeEventTopic = errors.New("the event topic can delete records before they are metered")

// eventTopicSafety are the settings the event topic must have: records
// stay until deleted on purpose (`tally all` deletes what the aggregator
// has committed; a production cluster keeps them, or an operator deletes
// them after the aggregator committed them).
var eventTopicSafety = map[string]string{"retention.ms": "-1", "retention.bytes": "-1"}

// minInsyncReplicas is the min.insync.replicas of the topics Tally
// creates: the flag, or min(2, replication factor), so that with three
// replicas a record acknowledged to ingest (acks=all) is on at least two.
func (c *Config) minInsyncReplicas() int {
	if c.MinInsyncReplicas > 0 {
		return c.MinInsyncReplicas
	}
	return max(1, min(2, c.ReplicationFactor))
}

func (c *Config) withMinInsync(entries map[string]string) map[string]string {
	out := maps.Clone(entries)
	if out == nil {
		out = map[string]string{}
	}
	out["min.insync.replicas"] = strconv.Itoa(c.minInsyncReplicas())
	return out
}

// eventTopicConfigs are the caller's settings for a new event topic with
// the safety settings on top: no caller can turn retention back on.
func (c *Config) eventTopicConfigs(entries map[string]string) map[string]string {
	out := c.withMinInsync(entries)
	maps.Copy(out, eventTopicSafety)
	return out
}

// topicReplication is what Metadata says of a topic's replicas: the
// brokers of the cluster, the fewest and most replicas of a partition, and
// a partition with the fewest.
type topicReplication struct{ brokers, fewest, most, partition int }

func replicationOf(brokers int, t kafka.Topic) topicReplication {
	r := topicReplication{brokers: brokers}
	for i, p := range t.Partitions {
		n := len(p.Replicas)
		if i == 0 || n < r.fewest {
			r.fewest, r.partition = n, p.ID
		}
		r.most = max(r.most, n)
	}
	return r
}

// checkEventTopic reads the event topic's effective settings (the topic's
// own, or the cluster default it inherits) and returns ErrUnsafeEventTopic
// if they can delete records or leave an acknowledged record on one
// broker (rep, from Metadata). A broker that refuses DescribeConfigs (an
// ACL) fails the check too: safety that cannot be verified is not assumed.
func (c *Config) checkEventTopic(ctx context.Context, client *kafka.Client, rep topicReplication) error {
	resp, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic,
		ResourceName: c.Topic,
		ConfigNames:  []string{"retention.ms", "retention.bytes", "cleanup.policy", "unclean.leader.election.enable", "min.insync.replicas"},
	}}})
	if err != nil {
		return fmt.Errorf("kafka topic %s: read its retention settings: %w", c.Topic, err)
	}
	got := map[string]string{}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return fmt.Errorf("kafka topic %s: read its retention settings (DescribeConfigs must be allowed): %w", c.Topic, r.Error)
		}
		for _, e := range r.ConfigEntries {
			got[e.ConfigName] = e.ConfigValue
		}
	}
	return unsafeTopic(c.Topic, got, rep)
}

// unsafeTopic explains what in settings can delete records, and what in
// the replication can leave an acknowledged record on one broker, or
// returns nil. A setting the broker did not report is assumed to be
// Kafka's default, which for retention.ms is 7 days, for
// unclean.leader.election.enable false and for min.insync.replicas 1.
//
// Replication: with acks=all Kafka acknowledges once every replica in
// sync has a record, and min.insync.replicas is the fewest it accepts; at
// 1 a partition whose other replicas fell behind acknowledges with the
// leader alone, and that broker's disk is then the only copy of an event
// ingest answered 202 for. So a partition with two or more replicas needs
// min.insync.replicas of 2 or more, and on a cluster of several brokers a
// partition with one replica is refused too. One broker (a development
// cluster, `tally all`) with one replica is accepted: there is nothing to
// replicate to.
func unsafeTopic(topic string, settings map[string]string, rep topicReplication) error {
	var problems, fixes []string
	for _, name := range []string{"retention.ms", "retention.bytes"} {
		v, ok := settings[name]
		if !ok {
			v = "(not reported)"
		}
		if v != "-1" {
			problems = append(problems, name+"="+v)
		}
	}
	if policy := settings["cleanup.policy"]; strings.Contains(policy, "compact") {
		problems = append(problems, "cleanup.policy="+policy)
	}
	if v := settings["unclean.leader.election.enable"]; strings.EqualFold(v, "true") {
		problems = append(problems, "unclean.leader.election.enable="+v)
	}
	if len(problems) > 0 {
		fixes = append(fixes, fmt.Sprintf("set retention.ms=-1 and retention.bytes=-1 (and cleanup.policy=delete, "+
			"unclean.leader.election.enable=false), e.g. kafka-configs.sh --alter --entity-type topics --entity-name %s "+
			"--add-config retention.ms=-1,retention.bytes=-1,cleanup.policy=delete,unclean.leader.election.enable=false", topic))
	}
	if rep.brokers >= 2 && rep.fewest < 2 {
		problems = append(problems, fmt.Sprintf("partition %d has %d replica on a cluster of %d brokers", rep.partition, rep.fewest, rep.brokers))
		fixes = append(fixes, fmt.Sprintf("give every partition %d replicas (kafka-reassign-partitions.sh) and set min.insync.replicas=2", min(3, rep.brokers)))
	}
	if rep.most >= 2 {
		v, ok := settings["min.insync.replicas"]
		if !ok {
			v = "1" // Kafka's default
		}
		if n, err := strconv.Atoi(v); err != nil || n < 2 {
			replicas := strconv.Itoa(rep.most)
			if rep.fewest != rep.most {
				replicas = fmt.Sprintf("%d to %d", rep.fewest, rep.most)
			}
			problems = append(problems, fmt.Sprintf("min.insync.replicas=%s with %s replicas (a record acknowledged by the leader alone when the others fall behind)", v, replicas))
			fixes = append(fixes, fmt.Sprintf("set min.insync.replicas=2 (with 3 replicas one broker can then be down), e.g. "+
				"kafka-configs.sh --alter --entity-type topics --entity-name %s --add-config min.insync.replicas=2", topic))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("kafka topic %s has %s: %w; Tally refuses it: %s", topic, strings.Join(problems, ", "), ErrUnsafeEventTopic, strings.Join(fixes, "; "))
}

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

// checkEventTopic reads the event topic's effective settings (the topic's
// own, or the cluster default it inherits) and returns ErrUnsafeEventTopic
// if they can delete records. A broker that refuses DescribeConfigs (an
// ACL) fails the check too: safety that cannot be verified is not assumed.
func (c *Config) checkEventTopic(ctx context.Context, client *kafka.Client) error {
	resp, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic,
		ResourceName: c.Topic,
		ConfigNames:  []string{"retention.ms", "retention.bytes", "cleanup.policy", "unclean.leader.election.enable"},
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
	return unsafeSettings(c.Topic, got)
}

// unsafeSettings explains what in settings can delete records, or returns
// nil. A setting the broker did not report is assumed to be Kafka's
// default, which for retention.ms is 7 days and for
// unclean.leader.election.enable false.
func unsafeSettings(topic string, settings map[string]string) error {
	var problems []string
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
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("kafka topic %s has %s: %w; Tally refuses it: set retention.ms=-1 and retention.bytes=-1 (and cleanup.policy=delete, "+
		"unclean.leader.election.enable=false), e.g. kafka-configs.sh --alter --entity-type topics --entity-name %s "+
		"--add-config retention.ms=-1,retention.bytes=-1,cleanup.policy=delete,unclean.leader.election.enable=false",
		topic, strings.Join(problems, ", "), ErrUnsafeEventTopic, topic)
}

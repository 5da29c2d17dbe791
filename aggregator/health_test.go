package aggregator

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/internal/testenv"
)

// TestReadinessFollowsAssignment: 503 while the event topic does not exist
// and no partition is held, 200 once consuming; with two members on one
// partition, only the holder is ready, and the other takes over (and
// becomes ready) when the holder leaves.
func TestReadinessFollowsAssignment(t *testing.T) {
	e := newEnv(t, 1)
	e.createMeter(testOrg, `{"key":"calls","event_type":"api_call","aggregation":"COUNT"}`)
	late := *e.kafka
	late.Topic = "created-later"
	cfg := withGroup(testConfig(), t)
	cfg.GroupID += "-late"
	r := e.startWith(cfg, Deps{ClickHouse: e.conn, Kafka: &late})
	code, body := httpGet(t, r.svc.Addr(), "/readyz")
	if code != 503 || !strings.Contains(body, `"kafka":"kafka topic created-later`) || strings.Contains(body, `"consumer":"ok"`) {
		t.Errorf("readiness without the topic = %d %s, want 503 naming kafka and consumer", code, body)
	}
	testenv.CreateTopic(t, e.kafka.Brokers, late.Topic, 2)
	e.waitFor("readiness 200 once the topic exists", func() bool { code, _ := httpGet(t, r.svc.Addr(), "/readyz"); return code == 200 })
	r.shutdown(t)

	cfg = withGroup(testConfig(), t)
	a := e.start(cfg)
	e.waitFor("a ready", func() bool { code, _ := httpGet(t, a.svc.Addr(), "/readyz"); return code == 200 })
	b := e.start(cfg)
	var holder, idle *running
	e.waitFor("one member holding the partition, the other not ready", func() bool {
		codeA, bodyA := httpGet(t, a.svc.Addr(), "/readyz")
		codeB, bodyB := httpGet(t, b.svc.Addr(), "/readyz")
		switch {
		case codeA == 200 && codeB == 503 && strings.Contains(bodyB, "holds no partitions"):
			holder, idle = a, b
		case codeB == 200 && codeA == 503 && strings.Contains(bodyA, "holds no partitions"):
			holder, idle = b, a
		}
		return holder != nil
	})
	if got := metricValue(t, idle.reg, "tally_aggregator_assigned_partitions", nil); got != 0 {
		t.Errorf("idle member: assigned_partitions = %v", got)
	}

	holder.shutdown(t)
	e.waitFor("the other member ready after taking over", func() bool { code, _ := httpGet(t, idle.svc.Addr(), "/readyz"); return code == 200 })
	e.produce(event("c1", "e1", "api_call", t0, `{}`))
	e.waitCommitted(cfg.GroupID)
	if n := len(e.readings("calls")); n != 1 {
		t.Errorf("readings after takeover: %d, want 1", n)
	}
	if got := metricValue(t, idle.reg, "tally_aggregator_consumer_lag_messages", map[string]string{"partition": "0"}); got != 0 {
		t.Errorf("lag after everything is committed = %v, want 0", got)
	}
	if got := metricValue(t, idle.reg, "tally_aggregator_rebalances_total", nil); got < 2 {
		t.Errorf("rebalances_total = %v, want at least 2 generations", got)
	}
}

// TestConsumerStateStall checks the stall rule with a controlled clock: a
// partition with lag and no commit for StallTimeout fails readiness, and
// the lag series of a revoked partition disappears.
func TestConsumerStateStall(t *testing.T) {
	reg := prometheus.NewRegistry()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newConsumerState(time.Minute, newMetrics(reg), newSafetyMetrics(reg))
	s.now = func() time.Time { return now }

	if err := s.check(t.Context()); err == nil || !strings.Contains(err.Error(), "not in a consumer group generation") {
		t.Fatalf("before any generation: %v", err)
	}
	s.startGeneration(3, nil)
	if err := s.check(t.Context()); err == nil || !strings.Contains(err.Error(), "holds no partitions in generation 3") {
		t.Fatalf("without partitions: %v", err)
	}
	s.startGeneration(4, []kafka.PartitionAssignment{{ID: 0, Offset: 100}, {ID: 1, Offset: kafka.FirstOffset}})
	if err := s.check(t.Context()); err == nil || !strings.Contains(err.Error(), "partition count is not verified yet") {
		t.Fatalf("before the partition count is verified: %v", err)
	}
	s.setTopicUnverified(nil)
	if err := s.check(t.Context()); err != nil {
		t.Fatalf("fresh assignment: %v", err)
	}
	s.fetched(0, 100, 150) // 50 behind
	s.fetched(1, 0, 10)
	now = now.Add(2 * time.Minute)
	err := s.check(t.Context())
	if err == nil || !strings.Contains(err.Error(), "partition 0: lag 50") || !strings.Contains(err.Error(), "partition 1: lag 10") {
		t.Fatalf("two minutes without commits: %v", err)
	}
	// The metric shows it without anyone asking /readyz.
	if got := metricValue(t, reg, "tally_aggregator_stalled_partitions", nil); got != 2 {
		t.Errorf("stalled_partitions = %v, want 2", got)
	}
	s.committed(0, 150)
	s.committed(1, 5)
	if got := metricValue(t, reg, "tally_aggregator_consumer_lag_messages", map[string]string{"partition": "1"}); got != 5 {
		t.Errorf("lag of partition 1 = %v, want 5", got)
	}
	if err := s.check(t.Context()); err != nil {
		t.Fatalf("after commits: %v", err)
	}
	if got := metricValue(t, reg, "tally_aggregator_stalled_partitions", nil); got != 0 {
		t.Errorf("stalled_partitions after commits = %v, want 0", got)
	}
	now = now.Add(2 * time.Minute)
	if err := s.check(t.Context()); err == nil || strings.Contains(err.Error(), "partition 0") {
		t.Fatalf("partition 1 still behind, partition 0 caught up: %v", err)
	}
	s.endGeneration()
	if n := testutilCount(t, reg, "tally_aggregator_consumer_lag_messages"); n != 0 {
		t.Errorf("%d lag series left after the partitions were revoked", n)
	}
}

func testutilCount(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	return len(metricFamily(t, reg, name).GetMetric())
}

// TestConsumerStateBrokerOffsets: a member that never manages to fetch
// still sees its lag from the broker's offsets, and turns not ready.
func TestConsumerStateBrokerOffsets(t *testing.T) {
	reg := prometheus.NewRegistry()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newConsumerState(time.Minute, newMetrics(reg), newSafetyMetrics(reg))
	s.now = func() time.Time { return now }
	s.startGeneration(1, []kafka.PartitionAssignment{{ID: 0, Offset: kafka.FirstOffset}, {ID: 1, Offset: 40}})
	s.setTopicUnverified(nil)
	s.observeOffsets(0, 7, 30) // nothing committed: the member starts at the log start
	s.observeOffsets(1, 0, 40) // caught up
	if got := metricValue(t, reg, "tally_aggregator_consumer_lag_messages", map[string]string{"partition": "0"}); got != 23 {
		t.Errorf("lag of partition 0 = %v, want 23", got)
	}
	now = now.Add(2 * time.Minute)
	if err := s.check(t.Context()); err == nil || !strings.Contains(err.Error(), "partition 0: lag 23") || strings.Contains(err.Error(), "partition 1") {
		t.Fatalf("a partition that was never fetched: %v", err)
	}
	s.observeOffsets(1, 0, 45) // new records that are not fetched either
	if err := s.check(t.Context()); err == nil || !strings.Contains(err.Error(), "partition 1: lag 5") {
		t.Fatalf("records arrived but were not fetched: %v", err)
	}
}

// TestConsumerStateHalts: a halted partition explains itself in readiness
// instead of as a stall, counts in the halted gauge by reason, and a
// changed partition count is reported for the topic, across generations.
func TestConsumerStateHalts(t *testing.T) {
	reg := prometheus.NewRegistry()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newConsumerState(time.Minute, newMetrics(reg), newSafetyMetrics(reg))
	s.now = func() time.Time { return now }
	s.startGeneration(1, []kafka.PartitionAssignment{{ID: 0, Offset: 5}, {ID: 1, Offset: 0}})
	s.setTopicUnverified(nil)
	s.observeOffsets(0, 10, 20)
	s.halt(0, haltOffsetOutOfRange, &offsetOutOfRange{group: "g", topic: "events", partition: 0, position: 5, logHead: 10})
	now = now.Add(2 * time.Minute)
	err := s.check(t.Context())
	if err == nil || !strings.Contains(err.Error(), "halted: partition 0: records from offset 5 to 9 were deleted") || strings.Contains(err.Error(), "stalled") {
		t.Fatalf("halted partition: %v", err)
	}
	if got := metricValue(t, reg, "tally_aggregator_halted_partitions", map[string]string{"reason": haltOffsetOutOfRange}); got != 1 {
		t.Errorf("halted_partitions{offset_out_of_range} = %v, want 1", got)
	}
	if got := metricValue(t, reg, "tally_aggregator_offset_out_of_range_total", map[string]string{"partition": "0"}); got != 1 {
		t.Errorf("offset_out_of_range_total{partition=0} = %v, want 1", got)
	}
	s.endGeneration()
	if got := metricValue(t, reg, "tally_aggregator_halted_partitions", map[string]string{"reason": haltOffsetOutOfRange}); got != 0 {
		t.Errorf("halted_partitions after the generation = %v, want 0", got)
	}

	changed := &partitionCountChanged{topic: "events", recorded: 3, current: 5}
	s.setTopicHalt(changed)
	s.startGeneration(2, []kafka.PartitionAssignment{{ID: 0, Offset: 5}})
	s.halt(0, haltPartitionCountChanged, nil)
	if err := s.check(t.Context()); err == nil || !strings.Contains(err.Error(), "has 5 partitions, but 3 were recorded") {
		t.Fatalf("changed partition count: %v", err)
	}
	if got := metricValue(t, reg, "tally_aggregator_halted_partitions", map[string]string{"reason": haltPartitionCountChanged}); got != 1 {
		t.Errorf("halted_partitions{partition_count_changed} = %v, want 1", got)
	}
}

// TestConsumerStateIdlePartitionIsNotStalled: a partition that was caught
// up for a long time is not stalled the moment a new record arrives; the
// stall clock starts when it falls behind.
func TestConsumerStateIdlePartitionIsNotStalled(t *testing.T) {
	reg := prometheus.NewRegistry()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newConsumerState(time.Minute, newMetrics(reg), newSafetyMetrics(reg))
	s.now = func() time.Time { return now }
	s.startGeneration(1, []kafka.PartitionAssignment{{ID: 0, Offset: 10}})
	s.setTopicUnverified(nil)
	s.observeOffsets(0, 0, 10) // caught up
	now = now.Add(10 * time.Minute)
	s.observeOffsets(0, 0, 10) // still caught up, nothing to commit
	now = now.Add(5 * time.Second)
	s.observeOffsets(0, 0, 11) // a new record
	if err := s.check(t.Context()); err != nil {
		t.Fatalf("a record that arrived 0s ago on a caught-up partition: %v", err)
	}
	now = now.Add(2 * time.Minute)
	if err := s.check(t.Context()); err == nil || !strings.Contains(err.Error(), "partition 0: lag 1, no commit for 2m5s") {
		t.Fatalf("behind for two minutes: %v", err)
	}
}

package aggregator

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// A partition halts (stops being consumed while this member keeps holding
// it, its committed offset unchanged) when going on could count wrongly
// or skip records silently. Only an operator can resolve either reason;
// readiness says what happened and what to do.
const (
	// haltOffsetOutOfRange: records after the committed offset were
	// deleted from Kafka before they were metered (position.go).
	haltOffsetOutOfRange = "offset_out_of_range"
	// haltLogTruncated: the log ends before the group's position
	// (position.go).
	haltLogTruncated = "log_truncated"
	// haltPartitionCountChanged: the event topic's partition count
	// differs from the recorded one (partitions.go).
	haltPartitionCountChanged = "partition_count_changed"
	// haltClusterLayoutChanged: the ClickHouse cluster's shard layout
	// differs from the accepted one (partitions.go).
	haltClusterLayoutChanged = "cluster_layout_changed"
)

var haltReasons = []string{haltOffsetOutOfRange, haltLogTruncated, haltPartitionCountChanged, haltClusterLayoutChanged}

// safetyMetrics show halts, stalls, lost assignments and the sizes of
// batches.
type safetyMetrics struct {
	halted          *prometheus.GaugeVec
	outOfRange      *prometheus.CounterVec
	topicPartitions *prometheus.GaugeVec
	batchBytes      prometheus.Histogram
	assignmentLost  prometheus.Counter
	state           *consumerState // read by the stalled gauge at scrape time
}

func newSafetyMetrics(reg prometheus.Registerer) *safetyMetrics {
	f := promauto.With(reg)
	m := &safetyMetrics{
		halted: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tally_aggregator_halted_partitions",
			Help: "Partitions this member holds but has stopped consuming, by reason: offset_out_of_range, log_truncated, partition_count_changed or cluster_layout_changed.",
		}, []string{"reason"}),
		outOfRange: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_aggregator_offset_out_of_range_total",
			Help: "Times a partition's next records were found deleted from Kafka before they were metered, or its log found ending before its position.",
		}, []string{"partition"}),
		topicPartitions: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tally_aggregator_event_topic_partitions",
			Help: "Partition count of the event topic: current (from Kafka) and recorded (accepted, in ClickHouse).",
		}, []string{"source"}),
		batchBytes: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "tally_aggregator_batch_bytes",
			Help:    "Bytes (keys, values and headers) of the records of one batch.",
			Buckets: prometheus.ExponentialBuckets(1<<10, 4, 10), // 1 KiB .. 256 MiB
		}),
		assignmentLost: f.NewCounter(prometheus.CounterOpts{
			Name: "tally_aggregator_assignment_lost_total",
			Help: "Generations this member ended because the coordinator no longer assigned it the partitions it consumed.",
		}),
	}
	for _, r := range haltReasons {
		m.halted.WithLabelValues(r).Set(0)
	}
	// Computed when scraped, with the readiness rule, so that an alert
	// does not depend on anyone calling /readyz.
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tally_aggregator_stalled_partitions",
		Help: "Partitions this member holds that have lag but no commit for -aggregator.stall-timeout (halted ones are not counted here).",
	}, func() float64 {
		if m.state == nil {
			return 0
		}
		return float64(len(m.state.stalled()))
	})
	return m
}

// halt records that this member stopped consuming partition for reason;
// why is what readiness shows (nil for partition_count_changed and
// cluster_layout_changed, which readiness explains once for the topic).
func (s *consumerState) halt(partition int, reason string, why error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.partitions[partition]
	if !ok {
		return // revoked meanwhile
	}
	p.halted, p.haltedWhy = reason, why
	if reason == haltOffsetOutOfRange || reason == haltLogTruncated {
		s.safety.outOfRange.WithLabelValues(strconv.Itoa(partition)).Inc()
	}
	s.countHalts()
}

// countHalts sets the halted gauges; s.mu must be held.
func (s *consumerState) countHalts() {
	counts := map[string]int{}
	for _, p := range s.partitions {
		if p.halted != "" {
			counts[p.halted]++
		}
	}
	for _, r := range haltReasons {
		s.safety.halted.WithLabelValues(r).Set(float64(counts[r]))
	}
}

// setTopicHalt records whether the topic's partition count, or on a
// cluster the shard layout, differs from the accepted one (nil: neither
// does). It survives generations: the next generation checks again before
// it consumes.
func (s *consumerState) setTopicHalt(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.topicHalt = err
}

// setTopicUnverified records why the partition count (or shard layout)
// could not be verified (nil: it was), and reports whether that is news. Before the
// first verification of a generation, its partitions are not consumed.
func (s *consumerState) setTopicUnverified(err error) (changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed = (err == nil) != (s.topicUnverified == nil)
	s.topicUnverified = err
	return changed
}

func (s *consumerState) topicHalted() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.topicHalt
}

// haltProblems lists the halts for readiness; s.mu must be held.
func (s *consumerState) haltProblems() []string {
	var problems []string
	if s.topicHalt != nil {
		problems = append(problems, s.topicHalt.Error())
	}
	if s.topicUnverified != nil && s.active {
		problems = append(problems, s.topicUnverified.Error()+" (nothing is consumed until it is)")
	}
	for _, id := range s.sortedIDs() {
		if p := s.partitions[id]; p.haltedWhy != nil {
			problems = append(problems, fmt.Sprintf("halted: %v", p.haltedWhy))
		}
	}
	return problems
}

package aggregator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// consumerState is what this member knows about its share of the topic:
// the generation, the partitions it holds and how far each is committed.
// It backs the "consumer" readiness check and the lag gauges. OpenMeter's
// sink once lost its assignment and stayed healthy for 16 hours; here
// readiness fails as soon as this member holds no partitions, when a
// partition it holds has lag but makes no progress, and when it has
// stopped consuming a partition on purpose (halt.go).
type consumerState struct {
	stallTimeout time.Duration
	metrics      *metrics
	safety       *safetyMetrics
	now          func() time.Time

	mu         sync.Mutex
	active     bool
	generation int32
	partitions map[int]*partitionState
	// topicHalt: the partition count or the cluster's shard layout
	// changed; topicUnverified: they could not be compared yet
	// (partitions.go).
	topicHalt, topicUnverified error
}

type partitionState struct {
	position   int64     // committed offset, or the first fetched one before any commit; -1 unknown
	highWater  int64     // from fetched records and the broker (assignment.go); 0 until known
	progressAt time.Time // last commit, or last seen without lag
	halted     string    // a halt reason (halt.go), "" while consuming
	haltedWhy  error     // what readiness says about it
}

func (p *partitionState) lag() int64 {
	if p.position < 0 || p.highWater <= p.position {
		return 0
	}
	return p.highWater - p.position
}

func newConsumerState(stallTimeout time.Duration, m *metrics, safety *safetyMetrics) *consumerState {
	s := &consumerState{stallTimeout: stallTimeout, metrics: m, safety: safety, now: time.Now, partitions: map[int]*partitionState{}}
	safety.state = s
	return s
}

func (s *consumerState) startGeneration(id int32, assigned []kafka.PartitionAssignment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active, s.generation = true, id
	s.partitions = make(map[int]*partitionState, len(assigned))
	now := s.now()
	for _, a := range assigned {
		pos := a.Offset
		if pos < 0 {
			pos = -1 // FirstOffset: known once the first record is fetched
		}
		s.partitions[a.ID] = &partitionState{position: pos, progressAt: now}
	}
	s.metrics.assigned.Set(float64(len(assigned)))
	// Cleared by the generation's first verification (assignment.go).
	s.topicUnverified = errors.New("the event topic's partition count is not verified yet")
}

// endGeneration forgets the revoked partitions, lag series included: a
// stale lag gauge of a partition another member now consumes would page
// someone for nothing.
func (s *consumerState) endGeneration() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.partitions {
		s.metrics.lag.DeleteLabelValues(strconv.Itoa(id))
	}
	s.active, s.partitions = false, map[int]*partitionState{}
	s.metrics.assigned.Set(0)
	s.countHalts()
}

// fetched records the high watermark seen with the records at the head of
// a new batch starting at offset.
func (s *consumerState) fetched(partition int, offset, highWater int64) {
	s.update(partition, func(p *partitionState) {
		if p.position < 0 {
			p.position = offset
		}
		p.highWater = max(p.highWater, highWater)
	})
}

// observeOffsets records the broker's log start and high watermark of a
// partition. Before this member has committed or fetched anything, the log
// start is where it will begin, so lag is known even if fetching never
// succeeds.
func (s *consumerState) observeOffsets(partition int, logStart, highWater int64) {
	s.update(partition, func(p *partitionState) {
		if p.position < 0 && logStart >= 0 {
			p.position = logStart
		}
		p.highWater = max(p.highWater, highWater)
	})
}

// committed records a successful commit of offset (the next to read).
func (s *consumerState) committed(partition int, offset int64) {
	s.update(partition, func(p *partitionState) {
		p.position = offset
		p.progressAt = s.now()
	})
}

func (s *consumerState) update(partition int, f func(*partitionState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.partitions[partition]
	if !ok {
		return // revoked meanwhile
	}
	f(p)
	if p.lag() == 0 {
		// Caught up is progress too: the stall clock starts when the
		// partition falls behind, not at its last commit, however old.
		p.progressAt = s.now()
	}
	s.metrics.lag.WithLabelValues(strconv.Itoa(partition)).Set(float64(p.lag()))
}

// check is the "consumer" readiness check. Halts come first: they need an
// operator, and they explain the lag that follows them.
func (s *consumerState) check(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	problems := s.haltProblems()
	switch {
	case !s.active:
		problems = append(problems, "not in a consumer group generation (joining or rebalancing)")
	case len(s.partitions) == 0:
		problems = append(problems, fmt.Sprintf("holds no partitions in generation %d (more aggregators than partitions?)", s.generation))
	default:
		if stalled := s.stalledLocked(); len(stalled) > 0 {
			problems = append(problems, fmt.Sprintf("stalled: %v", stalled))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(problems, "; "))
}

// stalled describes the partitions that have lag but no commit for
// StallTimeout, except halted ones (they explain themselves).
func (s *consumerState) stalled() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stalledLocked()
}

func (s *consumerState) stalledLocked() []string {
	now := s.now()
	var stalled []string
	for _, id := range s.sortedIDs() {
		p := s.partitions[id]
		if idle := now.Sub(p.progressAt); p.halted == "" && p.lag() > 0 && idle > s.stallTimeout {
			stalled = append(stalled, fmt.Sprintf("partition %d: lag %d, no commit for %s", id, p.lag(), idle.Round(time.Second)))
		}
	}
	return stalled
}

// sortedIDs returns the held partitions in order; s.mu must be held.
func (s *consumerState) sortedIDs() []int {
	ids := make([]int, 0, len(s.partitions))
	for id := range s.partitions {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// assignment returns the partitions held, for tests and logs.
func (s *consumerState) assignment() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedIDs()
}

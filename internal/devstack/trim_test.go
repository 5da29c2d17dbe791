package devstack

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// firstRecord reads partition 0 of topic from its first offset, without a
// group, and returns the first record it gets.
func firstRecord(t *testing.T, addrs []string, topic string) kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     addrs,
		Topic:       topic,
		Partition:   0,
		StartOffset: kafka.FirstOffset,
		MaxWait:     100 * time.Millisecond,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := r.FetchMessage(ctx)
	if err != nil {
		t.Fatalf("read %s from its first offset: %v", topic, err)
	}
	return m
}

func logStart(t *testing.T, b *Broker, topic string) int64 {
	t.Helper()
	p := b.cluster.PartitionInfo(topic, 0)
	if p == nil {
		t.Fatalf("partition %s/0 does not exist", topic)
	}
	return p.LogStartOffset
}

// TestTrimOnceDeletesCommittedRecords: what the aggregator group has
// committed is deleted; nothing else is. The same on three brokers.
func TestTrimOnceDeletesCommittedRecords(t *testing.T) {
	for _, brokers := range []int{1, 3} {
		t.Run(fmt.Sprintf("Brokers=%d", brokers), func(t *testing.T) { trimDeletesCommitted(t, brokers) })
	}
}

func trimDeletesCommitted(t *testing.T, brokers int) {
	const topic, group = "events", "g"
	opts := BrokerOptions{Dir: t.TempDir(), Port: freePorts(t, brokers), Brokers: brokers}
	b := startBroker(t, opts)
	createTopic(t, b.Addrs(), topic, 1)
	produce(t, b.Addrs(), topic, 1000) // batches of 64: offset 400 is inside one
	consume(t, b.Addrs(), topic, group, 400)
	// A second group that committed only on another topic.
	produce(t, b.Addrs(), topic+"-dead-letter", 10)
	consume(t, b.Addrs(), topic+"-dead-letter", "other", 10)

	for _, g := range []string{"no-such-group", "other"} {
		b.trimOnce(context.Background(), topic, g)
		if got := logStart(t, b, topic); got != 0 {
			t.Fatalf("trim for group %q, which committed nothing on %s, moved the log start to %d", g, topic, got)
		}
	}
	if m := firstRecord(t, b.Addrs(), topic); m.Offset != 0 || string(m.Value) != recordValue(0) {
		t.Fatalf("before trimming, first record is %d %q, want 0 %q", m.Offset, m.Value, recordValue(0))
	}

	// The last committed record stays, so that a restart finds the
	// partition's offsets (see trimRound).
	b.trimOnce(context.Background(), topic, group)
	if got := logStart(t, b, topic); got != 399 {
		t.Fatalf("after trimming group %q's 400 committed records, log start = %d, want 399", group, got)
	}
	if m := firstRecord(t, b.Addrs(), topic); m.Offset != 399 || string(m.Value) != recordValue(399) {
		t.Fatalf("after trimming, first record is %d %q, want 399 %q", m.Offset, m.Value, recordValue(399))
	}
	if p := b.cluster.PartitionInfo(topic, 0); p.HighWatermark != 1000 {
		t.Fatalf("trimming changed the high watermark to %d", p.HighWatermark)
	}
	if got := logStart(t, b, topic+"-dead-letter"); got != 0 {
		t.Errorf("trimming %s moved the dead-letter topic's log start to %d", topic, got)
	}

	b.trimOnce(context.Background(), topic, group) // nothing new committed: a no-op
	if got := logStart(t, b, topic); got != 399 {
		t.Fatalf("second trim moved the log start to %d", got)
	}

	// A clean shutdown keeps the trimmed log start.
	b.Close()
	b = startBroker(t, opts)
	if got := logStart(t, b, topic); got != 399 {
		t.Errorf("after a clean restart, log start = %d, want 399", got)
	}
}

// TestTrimCommittedRunsUntilCancelled: the loop `tally all` starts trims on
// every tick and returns once its context is cancelled.
func TestTrimCommittedRunsUntilCancelled(t *testing.T) {
	const topic, group = "events", "g"
	b := startBroker(t, BrokerOptions{Dir: t.TempDir(), Port: freePort(t)})
	createTopic(t, b.Addrs(), topic, 1)
	produce(t, b.Addrs(), topic, 100)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.TrimCommitted(ctx, topic, group, 10*time.Millisecond)
	}()

	consume(t, b.Addrs(), topic, group, 40)
	deadline := time.Now().Add(10 * time.Second)
	for logStart(t, b, topic) != 39 { // the last committed record stays
		if time.Now().After(deadline) {
			t.Fatalf("TrimCommitted did not trim the 40 committed records: log start %d", logStart(t, b, topic))
		}
		time.Sleep(10 * time.Millisecond)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("TrimCommitted still running 10s after its context was cancelled")
	}

	// Cancelled before its first tick, it returns at once too.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	done = make(chan struct{})
	go func() {
		defer close(done)
		b.TrimCommitted(ctx, topic, group, time.Hour)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("TrimCommitted with a cancelled context did not return")
	}
}

// TestTrimMakesDurableBeforeDeleting: a trim round reads the committed
// offsets, then calls BeforeTrim (`tally all` syncs ClickHouse's data dir),
// and only then deletes, never past the offsets read before the sync. What
// the group commits while the sync runs was inserted into ClickHouse after
// the sync began, so the sync may not cover it. A failed sync deletes
// nothing. A test cannot cut the power; it checks the ordering that makes a
// power cut harmless.
func TestTrimMakesDurableBeforeDeleting(t *testing.T) {
	const topic, group = "events", "g"
	var (
		b                *Broker
		startAtSync      []int64 // the log start offset at each BeforeTrim call
		commitDuringSync int
		syncErr          error
	)
	reg := prometheus.NewRegistry()
	opts := BrokerOptions{Dir: t.TempDir(), Port: freePort(t), Registerer: reg, BeforeTrim: func(ctx context.Context) error {
		startAtSync = append(startAtSync, logStart(t, b, topic))
		if commitDuringSync > 0 {
			consume(t, b.Addrs(), topic, group, commitDuringSync)
			commitDuringSync = 0
		}
		return syncErr
	}}
	b = startBroker(t, opts)
	createTopic(t, b.Addrs(), topic, 1)
	produce(t, b.Addrs(), topic, 1000)
	consume(t, b.Addrs(), topic, group, 400)

	commitDuringSync = 200
	b.trimOnce(context.Background(), topic, group)
	if len(startAtSync) != 1 {
		t.Fatalf("the trim called BeforeTrim %d times, want once", len(startAtSync))
	}
	if startAtSync[0] != 0 {
		t.Fatalf("the log started at %d when BeforeTrim ran: records were deleted before the sync", startAtSync[0])
	}
	if got := sum(committed(b, topic, group)); got != 600 {
		t.Fatalf("the group committed %d during the sync, want 600", got)
	}
	if got := logStart(t, b, topic); got != 399 {
		t.Fatalf("the trim deleted up to %d, want 399: the offset committed before the sync (600 was committed during it), less the last record", got)
	}

	b.trimOnce(context.Background(), topic, group) // the next round covers what was committed during the last sync
	if got := logStart(t, b, topic); len(startAtSync) != 2 || got != 599 {
		t.Fatalf("second round: %d syncs, log start %d; want 2 syncs, 599", len(startAtSync), got)
	}
	b.trimOnce(context.Background(), topic, group) // nothing new committed: no sync, no delete
	if got := logStart(t, b, topic); len(startAtSync) != 2 || got != 599 {
		t.Fatalf("round with nothing to trim: %d syncs, log start %d; want 2 syncs, 599", len(startAtSync), got)
	}

	consume(t, b.Addrs(), topic, group, 100)
	syncErr = errors.New("sync failed")
	b.trimOnce(context.Background(), topic, group)
	if got := logStart(t, b, topic); len(startAtSync) != 3 || got != 599 {
		t.Fatalf("round whose sync failed: %d syncs, log start %d; want 3 syncs, 599 (nothing deleted)", len(startAtSync), got)
	}
	syncErr = nil
	b.trimOnce(context.Background(), topic, group)
	if got := logStart(t, b, topic); len(startAtSync) != 4 || got != 699 {
		t.Fatalf("round after the failed one: %d syncs, log start %d; want 4 syncs, 699", len(startAtSync), got)
	}

	for outcome, want := range map[string]float64{trimDone: 3, trimNothing: 1, trimSyncFailed: 1, trimDeleteFailed: 0} {
		if got := metricValue(t, reg, "tally_devstack_trim_rounds_total", outcome); got != want {
			t.Errorf("tally_devstack_trim_rounds_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
	if got := metricValue(t, reg, "tally_devstack_trimmed_records_total", ""); got != 699 {
		t.Errorf("tally_devstack_trimmed_records_total = %v, want 699", got)
	}
	if got := metricValue(t, reg, "tally_devstack_trim_sync_duration_seconds", ""); got != 4 {
		t.Errorf("tally_devstack_trim_sync_duration_seconds counted %v syncs, want 4", got)
	}
	if got := metricValue(t, reg, "tally_devstack_trim_duration_seconds", ""); got != 5 {
		t.Errorf("tally_devstack_trim_duration_seconds counted %v rounds, want 5", got)
	}
}

// metricValue returns a counter's value, or a histogram's count, of the
// series of name whose only label has value label ("" for no label).
func metricValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() != label {
				continue
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s{%q}", name, label)
	return 0
}

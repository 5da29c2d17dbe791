package devstack

import (
	"context"
	"testing"
	"time"

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
// committed is deleted; nothing else is.
func TestTrimOnceDeletesCommittedRecords(t *testing.T) {
	const topic, group = "events", "g"
	opts := BrokerOptions{Dir: t.TempDir(), Port: freePort(t)}
	b := startBroker(t, opts)
	createTopic(t, b.Addrs(), topic, 1)
	produce(t, b.Addrs(), topic, 1000) // batches of 64: offset 400 is inside one
	consume(t, b.Addrs(), topic, group, 400)
	// A second group that committed only on another topic.
	produce(t, b.Addrs(), topic+"-dead-letter", 10)
	consume(t, b.Addrs(), topic+"-dead-letter", "other", 10)

	for _, g := range []string{"no-such-group", "other"} {
		b.trimOnce(topic, g)
		if got := logStart(t, b, topic); got != 0 {
			t.Fatalf("trim for group %q, which committed nothing on %s, moved the log start to %d", g, topic, got)
		}
	}
	if m := firstRecord(t, b.Addrs(), topic); m.Offset != 0 || string(m.Value) != recordValue(0) {
		t.Fatalf("before trimming, first record is %d %q, want 0 %q", m.Offset, m.Value, recordValue(0))
	}

	b.trimOnce(topic, group)
	if got := logStart(t, b, topic); got != 400 {
		t.Fatalf("after trimming group %q's 400 committed records, log start = %d, want 400", group, got)
	}
	if m := firstRecord(t, b.Addrs(), topic); m.Offset != 400 || string(m.Value) != recordValue(400) {
		t.Fatalf("after trimming, first record is %d %q, want 400 %q", m.Offset, m.Value, recordValue(400))
	}
	if p := b.cluster.PartitionInfo(topic, 0); p.HighWatermark != 1000 {
		t.Fatalf("trimming changed the high watermark to %d", p.HighWatermark)
	}
	if got := logStart(t, b, topic+"-dead-letter"); got != 0 {
		t.Errorf("trimming %s moved the dead-letter topic's log start to %d", topic, got)
	}

	b.trimOnce(topic, group) // nothing new committed: a no-op
	if got := logStart(t, b, topic); got != 400 {
		t.Fatalf("second trim moved the log start to %d", got)
	}

	// A clean shutdown keeps the trimmed log start.
	b.Close()
	b = startBroker(t, opts)
	if got := logStart(t, b, topic); got != 400 {
		t.Errorf("after a clean restart, log start = %d, want 400", got)
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
	for logStart(t, b, topic) != 40 {
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

package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/internal/kafkaclient"
	"github.com/tally-oss/tally/internal/testenv"
)

// freePort returns a port for a broker, which tests restart on the same
// port, as `tally all` gives it one: from below the kernel's ephemeral
// range (testenv.StablePort), so that no port the kernel hands out
// meanwhile (another test's ClickHouse, say) can take it.
func freePort(t *testing.T) int {
	t.Helper()
	return testenv.StablePort(t)
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startBroker starts a broker that the test closes at its end unless it
// closed it already (Close is idempotent).
func startBroker(t *testing.T, opts BrokerOptions) *Broker {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	b, err := StartBroker(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// createTopic creates topic the way `tally all` does, with
// kafkaclient.Config.EnsureTopics (the dead-letter topic comes along),
// replicated on up to three brokers when there are several.
func createTopic(t *testing.T, addrs []string, topic string, partitions int) {
	t.Helper()
	cfg := kafkaclient.Config{
		Brokers: addrs, Topic: topic, DeadLetterTopic: topic + "-dead-letter",
		Partitions: partitions, ReplicationFactor: min(3, len(addrs)), CreateTopics: true,
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cfg.EnsureTopics(ctx, kafkaclient.TopicConfigs{}); err != nil {
		t.Fatal(err)
	}
}

func recordValue(i int) string { return fmt.Sprintf("record-%04d", i) }

// produce writes records record-0000 .. record-(n-1) as ingest does: every
// replica acknowledges. Small batches make trimming cut through a batch.
func produce(t *testing.T, addrs []string, topic string, n int) {
	t.Helper()
	w := &kafka.Writer{
		Addr:         kafka.TCP(addrs...),
		Topic:        topic,
		RequiredAcks: kafka.RequireAll,
		Balancer:     &kafka.RoundRobin{},
		BatchSize:    64,
		BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: fmt.Appendf(nil, "key-%d", i), Value: []byte(recordValue(i))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce %d records: %v", n, err)
	}
}

// consume reads n records in group as the aggregator does (FetchMessage,
// then CommitMessages), commits them, and leaves the group. It returns the
// values in the order read.
func consume(t *testing.T, addrs []string, topic, group string, n int) []string {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: addrs,
		Topic:   topic,
		GroupID: group,
		MaxWait: 100 * time.Millisecond,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	msgs := make([]kafka.Message, 0, n)
	for len(msgs) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("group %s: fetch after %d of %d records: %v", group, len(msgs), n, err)
		}
		msgs = append(msgs, m)
	}
	if err := r.CommitMessages(ctx, msgs...); err != nil {
		t.Fatalf("group %s: commit %d records: %v", group, n, err)
	}
	values := make([]string, len(msgs))
	for i, m := range msgs {
		values[i] = string(m.Value)
	}
	return values
}

// committed returns the offsets group has committed on topic, by partition.
func committed(b *Broker, topic, group string) map[int32]int64 {
	offsets := map[int32]int64{}
	info := b.cluster.GroupInfo(group)
	if info == nil {
		return offsets
	}
	for p, c := range info.Commits[topic] {
		offsets[p] = c.Offset
	}
	return offsets
}

func sum(offsets map[int32]int64) int64 {
	var n int64
	for _, o := range offsets {
		n += o
	}
	return n
}

// checkExactlyOnce fails unless first and then together are every record
// of 0..n-1 once.
func checkExactlyOnce(t *testing.T, n int, first, then []string) {
	t.Helper()
	seen := map[string]int{}
	for _, v := range slices.Concat(first, then) {
		seen[v]++
	}
	for i := range n {
		if c := seen[recordValue(i)]; c != 1 {
			t.Errorf("%s delivered %d times, want once", recordValue(i), c)
		}
		delete(seen, recordValue(i))
	}
	for v := range seen {
		t.Errorf("unexpected record %q", v)
	}
}

// freePorts returns the first of n consecutive ports nobody listened on a
// moment ago, for a broker of n brokers on Port, Port+1, ...
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		first := freePort(t)
		free := true
		for i := 1; i < n && free; i++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", first+i))
			if err != nil {
				free = false
				continue
			}
			free = ln.Close() == nil
		}
		if free {
			return first
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

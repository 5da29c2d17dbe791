package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func TestMain(m *testing.M) { Main(m) }

func TestDatabaseCreatedAndDropped(t *testing.T) {
	ctx := context.Background()
	var addr, database string
	t.Run("use", func(t *testing.T) {
		addr, database = NewDatabase(t)
		conn := Conn(t, addr, database)
		if err := conn.Exec(ctx, "CREATE TABLE readings (id UInt64) ENGINE = MergeTree ORDER BY id"); err != nil {
			t.Fatal(err)
		}
		// Batches, not Exec("INSERT ... VALUES"): 18.16 waits for a data
		// block after an inline VALUES insert and the call hangs.
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO readings (id)")
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []uint64{1, 2} {
			if err := batch.Append(id); err != nil {
				t.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			t.Fatal(err)
		}
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM readings").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Fatalf("count = %d, want 2", n)
		}
	})

	// The subtest's cleanups have run: the database must be gone.
	var n uint64
	conn := Conn(t, addr, "default")
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", database).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after the test", database)
	}
}

func TestDatabasesAreDistinct(t *testing.T) {
	addr1, db1 := NewDatabase(t)
	addr2, db2 := NewDatabase(t)
	if addr1 != addr2 {
		t.Fatalf("one shared server expected, got %s and %s", addr1, addr2)
	}
	if db1 == db2 {
		t.Fatalf("both databases are named %s", db1)
	}
}

// TestKafkaRoundTrip produces with the settings ingest must use (every
// replica acknowledges) and consumes in a group with explicit commits, as
// the aggregator does.
// TestKafkaRoundTrip produces and consumes through a group on one broker
// and on three, where CreateTopic replicates the topic three times.
func TestKafkaRoundTrip(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d-brokers", n), func(t *testing.T) { kafkaRoundTrip(t, n) })
	}
}

func kafkaRoundTrip(t *testing.T, nbrokers int) {
	brokers := KafkaBrokers(t, nbrokers)
	const topic, partitions, count = "events", 3, 50
	CreateTopic(t, brokers, topic, partitions)
	conn, err := kafka.Dial("tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	_ = conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if want := min(3, nbrokers); len(p.Replicas) != want {
			t.Errorf("partition %d has %d replicas on %d brokers, want %d", p.ID, len(p.Replicas), nbrokers, want)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		RequiredAcks: kafka.RequireAll,
		Balancer:     &kafka.Hash{},
		BatchTimeout: 10 * time.Millisecond,
	}
	defer w.Close()
	msgs := make([]kafka.Message, count)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: fmt.Appendf(nil, "customer-%d", i%7), Value: fmt.Appendf(nil, "event-%d", i)}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce: %v", err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers,
		Topic:   topic,
		GroupID: "testenv",
		MaxWait: 100 * time.Millisecond,
	})
	defer r.Close()
	seen := make(map[string]bool)
	for len(seen) < count {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("fetch after %d of %d messages: %v", len(seen), count, err)
		}
		seen[string(m.Value)] = true
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	for i := range count {
		if !seen[fmt.Sprintf("event-%d", i)] {
			t.Errorf("event-%d not consumed", i)
		}
	}
}

// TestCreateTopicIdempotent: kafka-go treats TOPIC_ALREADY_EXISTS as
// success, so services can create their topics on every start.
func TestCreateTopicIdempotent(t *testing.T) {
	brokers := Kafka(t)
	CreateTopic(t, brokers, "usage", 4)
	CreateTopic(t, brokers, "usage", 4)

	conn, err := kafka.Dial("tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions("usage")
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 4 {
		t.Fatalf("topic has %d partitions, want 4", len(parts))
	}
}

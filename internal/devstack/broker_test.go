package devstack

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// highWatermarks sums the high watermarks of topic's partitions: the
// number of records ever written to it.
func highWatermarks(t *testing.T, b *Broker, topic string) int64 {
	t.Helper()
	infos := b.cluster.PartitionInfos(topic)
	if len(infos) == 0 {
		t.Fatalf("topic %s does not exist", topic)
	}
	var n int64
	for _, p := range infos {
		n += p.HighWatermark
	}
	return n
}

// TestBrokerRestartResumesGroup is the life of `tally all`'s broker across
// a clean restart: records and the group's committed offsets survive, and
// the group goes on exactly where it committed.
// With three brokers (ports Port, Port+1, Port+2) the same holds.
func TestBrokerRestartResumesGroup(t *testing.T) {
	for _, tc := range []struct {
		syncWrites bool
		brokers    int
	}{{false, 1}, {true, 1}, {true, 3}} {
		t.Run(fmt.Sprintf("SyncWrites=%v,Brokers=%d", tc.syncWrites, tc.brokers), func(t *testing.T) {
			const topic, group, total, firstRead = "events", "g", 1000, 400
			opts := BrokerOptions{Dir: t.TempDir(), Port: freePorts(t, tc.brokers), SyncWrites: tc.syncWrites, Brokers: tc.brokers}
			b := startBroker(t, opts)
			var want []string
			for i := range tc.brokers {
				want = append(want, fmt.Sprintf("127.0.0.1:%d", opts.Port+i))
			}
			if addrs := b.Addrs(); !slices.Equal(addrs, want) {
				t.Fatalf("Addrs() = %q, want %q", addrs, want)
			}
			createTopic(t, b.Addrs(), topic, 3)
			produce(t, b.Addrs(), topic, total)
			first := consume(t, b.Addrs(), topic, group, firstRead)
			b.Close()

			b = startBroker(t, opts)
			if got := sum(committed(b, topic, group)); got != firstRead {
				t.Fatalf("after restart the group has committed %d records (%v), want %d", got, committed(b, topic, group), firstRead)
			}
			if got := highWatermarks(t, b, topic); got != total {
				t.Fatalf("after restart the topic holds %d records, want %d", got, total)
			}
			then := consume(t, b.Addrs(), topic, group, total-firstRead)
			checkExactlyOnce(t, total, first, then)
			if got := sum(committed(b, topic, group)); got != total {
				t.Errorf("group committed %d records at the end, want %d", got, total)
			}
		})
	}
}

// TestBrokerOptions: the options `tally all` passes are accepted, and the
// retention settings bound what the broker keeps.
func TestBrokerOptions(t *testing.T) {
	t.Run("defaults of tally all", func(t *testing.T) {
		b := startBroker(t, BrokerOptions{
			Dir: t.TempDir(), Port: freePort(t), SyncWrites: true,
			RetentionMs: (7 * 24 * time.Hour).Milliseconds(), RetentionBytes: 1 << 30,
		})
		createTopic(t, b.Addrs(), "events", 2)
		produce(t, b.Addrs(), "events", 100)
		b.trimOnce(context.Background(), "events", "no-such-group")
		for _, p := range b.cluster.PartitionInfos("events") {
			if p.LogStartOffset != 0 {
				t.Errorf("partition %d: retention removed fresh records (log start %d)", p.Partition, p.LogStartOffset)
			}
		}
		if got := highWatermarks(t, b, "events"); got != 100 {
			t.Errorf("topic holds %d records, want 100", got)
		}
	})

	t.Run("retention bytes", func(t *testing.T) {
		const limit = 8 << 10
		b := startBroker(t, BrokerOptions{Dir: t.TempDir(), Port: freePort(t), RetentionBytes: limit})
		createTopicWithoutSettings(t, b, "events")
		produce(t, b.Addrs(), "events", 1000)
		before := b.cluster.PartitionInfo("events", 0)
		if before.NumBytes <= limit {
			t.Fatalf("test needs more than %d bytes in the partition, has %d", limit, before.NumBytes)
		}
		b.trimOnce(context.Background(), "events", "no-such-group")
		p := b.cluster.PartitionInfo("events", 0)
		if p.LogStartOffset == 0 || p.NumBytes > limit || p.HighWatermark != 1000 {
			t.Errorf("after retention: log start %d, %d bytes, high watermark %d; want log start > 0, at most %d bytes, high watermark 1000",
				p.LogStartOffset, p.NumBytes, p.HighWatermark, limit)
		}
	})

	t.Run("retention time", func(t *testing.T) {
		b := startBroker(t, BrokerOptions{Dir: t.TempDir(), Port: freePort(t), RetentionMs: 1})
		createTopicWithoutSettings(t, b, "events")
		produce(t, b.Addrs(), "events", 100)
		// Records older than 1 ms go at the next trim once a millisecond
		// has passed; poll rather than sleep a guessed amount.
		deadline := time.Now().Add(10 * time.Second)
		for {
			b.trimOnce(context.Background(), "events", "no-such-group")
			p := b.cluster.PartitionInfo("events", 0)
			if p.LogStartOffset == p.HighWatermark && p.HighWatermark == 100 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("retention.ms=1 kept records: log start %d, high watermark %d", p.LogStartOffset, p.HighWatermark)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// createTopicWithoutSettings creates a one-partition topic with no
// settings of its own, so that the broker-wide retention defaults apply:
// kafkaclient.EnsureTopics gives the event topic retention.ms=-1.
func createTopicWithoutSettings(t *testing.T, b *Broker, topic string) {
	t.Helper()
	if err := b.cluster.CreateTopic(topic, 1, nil); err != nil {
		t.Fatal(err)
	}
}

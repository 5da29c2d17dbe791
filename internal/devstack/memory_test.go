package devstack

import (
	"context"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// The backlog of a slow or stopped aggregator stays on disk: this kfake
// keeps an index entry per record batch in memory and reads the records
// from its segment files when they are fetched. Producing 64 MiB must not
// grow the broker's heap by more than a fraction of it (an in-memory
// broker, without Dir, grows by all of it). Measured in `tally all` with
// ClickHouse stopped: a backlog of 3M events (82 MB on disk) left its RSS
// flat at 135 MiB, and kfake was not among the largest heap users.
func TestBacklogStaysOnDisk(t *testing.T) {
	b := startBroker(t, BrokerOptions{Dir: t.TempDir(), Port: freePort(t)})
	createTopic(t, b.Addrs(), "events", 1)
	before := heapInUse()
	const total, size = 64 << 20, 64 << 10
	w := &kafka.Writer{Addr: kafka.TCP(b.Addrs()...), Topic: "events", RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, BatchBytes: 1 << 20}
	rng := rand.New(rand.NewPCG(1, 2))
	for sent := 0; sent < total; {
		msgs := make([]kafka.Message, 15)
		for i := range msgs {
			v := make([]byte, size)
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
			msgs[i] = kafka.Message{Value: v}
			sent += size
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	grown := int64(heapInUse()) - int64(before)
	t.Logf("heap grew by %d KiB for %d MiB produced", grown>>10, total>>20)
	if grown > total/4 {
		t.Errorf("heap grew by %d MiB for %d MiB produced: the broker holds its backlog in memory", grown>>20, total>>20)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

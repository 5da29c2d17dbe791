package ingest

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// BenchmarkPublish measures the publisher at small request sizes: conns
// goroutines each publishing requests of n records (random customers, so
// spread over the 6 partitions) to an in-process kfake broker and waiting
// for the acknowledgement, as ingest's handlers do. ns/op and allocs/op
// are per record and include the broker's share, which runs in the same
// process; cpu-ns/record is the process's CPU time per record, less
// sensitive than ns/op to other work on the machine; records/produce
// shows how well group commit batches.
func BenchmarkPublish(b *testing.B) {
	for _, sh := range []struct{ conns, n int }{{1, 1}, {8, 10}, {8, 1000}} {
		b.Run(fmt.Sprintf("%dx%d", sh.conns, sh.n), func(b *testing.B) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "events"))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			var produces atomic.Int64
			c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				produces.Add(1)
				return nil, nil, false
			})
			p := newKafkaPublisher(kafkaConfig(c.ListenAddrs(), "events"), testConfig())
			defer p.Close()
			value := []byte(`{"id":"` + strings.Repeat("x", 36) + `","type":"api_call","source":"bench","time":"2026-12-01T10:00:00Z","subject":"c1","data":{"tokens":1234,"model":"large","region":"eu-west-1"}}`)
			requests := make([][]kafka.Message, sh.conns) // one per connection, sent again and again
			for w := range requests {
				for j := range sh.n {
					requests[w] = append(requests[w], kafka.Message{Key: fmt.Appendf(nil, "acme/c%d-%d", w, j), Value: value, Time: time.Now()})
				}
			}
			if err := p.Publish(context.Background(), requests[0]); err != nil { // metadata, connections
				b.Fatal(err)
			}
			produces.Store(0)
			b.ReportAllocs()
			cpu0 := rusageCPU()
			b.ResetTimer()
			var next atomic.Int64
			var failed atomic.Int64
			done := make(chan struct{})
			for w := range sh.conns {
				go func() {
					defer func() { done <- struct{}{} }()
					for {
						i := next.Add(int64(sh.n))
						if i > int64(b.N) {
							return
						}
						if err := p.Publish(context.Background(), requests[w]); err != nil {
							failed.Add(1)
						}
					}
				}()
			}
			for range sh.conns {
				<-done
			}
			b.StopTimer()
			b.ReportMetric(float64(rusageCPU()-cpu0)/float64(b.N), "cpu-ns/record")
			b.ReportMetric(float64(b.N)/float64(max(produces.Load(), 1)), "records/produce")
			if failed.Load() > 0 {
				b.Fatalf("%d requests failed", failed.Load())
			}
		})
	}
}

// rusageCPU is the user and system CPU time of the process so far.
func rusageCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package ingest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/testenv"
)

// BenchmarkIngest posts batches of 1000 events (about 150 bytes each, 100
// customers) through the full handler - auth, decoding, validation,
// encoding - into the in-process broker and waits for the acks, as a
// client would. "serial" is one client; "parallel" is GOMAXPROCS*4 clients
// sharing the one writer. Compare events/s across changes on one machine,
// not against absolute numbers.
func BenchmarkIngest(b *testing.B) {
	const batch = 1000
	var evs []string
	for i := range batch {
		evs = append(evs, event(fmt.Sprintf("evt-%06d", i), fmt.Sprintf("customer-%03d", i%100)))
	}
	body := array(evs...)

	for _, mode := range []string{"serial", "parallel"} {
		b.Run(mode, func(b *testing.B) {
			brokers := testenv.Kafka(b)
			testenv.CreateTopic(b, brokers, "events", 6)
			s := newTestService(b, testConfig(), Deps{Kafka: kafkaConfig(brokers, "events")})
			b.Cleanup(func() {
				if err := s.closePublisher(); err != nil {
					b.Error(err)
				}
			})
			h := s.Handler()
			// postBatch reports with Error, not Fatal: RunParallel calls it
			// from other goroutines.
			postBatch := func() bool {
				code, resp := serve(h, request{body: body, contentType: "application/json"})
				if code != http.StatusAccepted || !strings.HasPrefix(string(resp), `{"accepted":1000,`) {
					b.Errorf("status %d: %.200s", code, resp)
					return false
				}
				return true
			}
			if !postBatch() { // connect and fetch metadata outside the timing
				b.FailNow()
			}
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			start := time.Now()
			if mode == "serial" {
				for i := 0; i < b.N; i++ {
					if !postBatch() {
						break
					}
				}
			} else {
				b.SetParallelism(4)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if !postBatch() {
							return
						}
					}
				})
			}
			b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "events/s")
		})
	}
}

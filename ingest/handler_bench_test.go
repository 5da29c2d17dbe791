package ingest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// processCPU is the user and system CPU time of the process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// discardPublisher acknowledges every record at once: BenchmarkHandle
// measures ingest's own CPU per event, without a broker.
type discardPublisher struct{}

func (discardPublisher) Publish(context.Context, []kafka.Message) error { return nil }

// benchBody is a request of n events shaped as tally bench and tally
// loadgen send them (about 190 bytes each, 100 customers).
func benchBody(n int, ndjson bool) []byte {
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	evs := make([]string, n)
	for i := range evs {
		evs[i] = fmt.Sprintf(`{"id":"bench-run-%d","type":"api_call","customer_id":"loadgen-customer-%d","time":"%s","properties":{"tokens":0.1,"model":"gpt-4o","run_id":"bench-run"}}`,
			i, i%100, ts)
	}
	if ndjson {
		return []byte(strings.Join(evs, "\n") + "\n")
	}
	return array(evs...)
}

// BenchmarkHandle is one request of 1,000 events through the whole
// handler (auth, decompression, framing, validation, record encoding) with
// a publisher that acknowledges at once; ns/op divided by 1,000 is
// ingest's CPU per event outside Kafka.
func BenchmarkHandle(b *testing.B) {
	for _, c := range []struct {
		name    string
		ndjson  bool
		gzipped bool
	}{{"array", false, false}, {"ndjson-gzip", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			req := request{body: benchBody(1000, c.ndjson), contentType: "application/json"}
			if c.ndjson {
				req.contentType = "application/x-ndjson"
			}
			if c.gzipped {
				req.body, req.contentEncoding = gz(req.body), "gzip"
			}
			s := newTestService(b, testConfig(), Deps{Publisher: discardPublisher{}})
			h := s.Handler()
			b.SetBytes(int64(len(req.body)))
			b.ReportAllocs()
			// CPU time as well as wall time: on a shared machine the
			// process's CPU per event is the steadier figure.
			before := processCPU(b)
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req.build(EventsRoute))
				if rec.Code != http.StatusAccepted {
					b.Fatalf("status %d: %.200s", rec.Code, rec.Body.Bytes())
				}
			}
			b.ReportMetric(float64(processCPU(b)-before)/float64(b.N)/1000/1000, "cpu-us/event")
		})
	}
}

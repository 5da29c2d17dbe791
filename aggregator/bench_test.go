package aggregator

import (
	"fmt"
	"testing"
	"time"

	"github.com/tally-oss/tally/schemas"
)

// BenchmarkAggregate measures events per second from the topic into
// ClickHouse: fetch, lookup, events insert, meter evaluation (a SUM grouped
// by one property and a COUNT), readings insert and commit, against the
// real ClickHouse. Records are produced before the timer starts. One
// partition is the unit of scaling; four show what parallel partitions add
// on this machine (ClickHouse and the broker share its cores).
func BenchmarkAggregate(b *testing.B) {
	for _, partitions := range []int{1, 4} {
		b.Run(fmt.Sprintf("partitions=%d", partitions), func(b *testing.B) { benchmarkAggregate(b, partitions) })
	}
}

func benchmarkAggregate(b *testing.B, partitions int) {
	e := newEnv(b, partitions)
	e.createMeter(testOrg, `{"key":"tokens","event_type":"api_call","aggregation":"SUM","value_property":"tokens","group_by":{"model":"model"}}`)
	e.createMeter(testOrg, `{"key":"calls","event_type":"api_call","aggregation":"COUNT"}`)
	const chunk = 10_000
	for from := 0; from < b.N; from += chunk {
		recs := make([]schemas.Record, min(chunk, b.N-from))
		for i := range recs {
			id := from + i
			recs[i] = event(fmt.Sprintf("customer-%d", id%100), fmt.Sprintf("event-%d", id), "api_call", t0,
				`{"tokens":12.5,"model":"gpt-5","route":"/v1/chat","region":"eu-west-1"}`)
		}
		e.produce(recs...)
	}
	cfg := testConfig()
	cfg.GroupID = "bench"
	b.ResetTimer()
	start := time.Now()
	e.start(cfg)
	e.waitCommitted(cfg.GroupID)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// BenchmarkEvaluate measures the CPU of metering one event without
// ClickHouse: reading its properties through the meters' plan, evaluating
// the meters of BenchmarkAggregate (a SUM grouped by one property and a
// COUNT) and building its readings' rows.
func BenchmarkEvaluate(b *testing.B) {
	rec := event("customer-1", "event-1", "api_call", t0,
		`{"tokens":12.5,"model":"gpt-5","route":"/v1/chat","region":"eu-west-1"}`)
	idx := indexMeters(map[string][]schemas.Meter{testOrg: {
		mustParseMeter(b, `{"key":"tokens","event_type":"api_call","aggregation":"SUM","value_property":"tokens","group_by":{"model":"model"}}`),
		mustParseMeter(b, `{"key":"calls","event_type":"api_call","aggregation":"COUNT"}`),
	}})
	set := idx[testOrg]["api_call"]
	b.ReportAllocs()
	for b.Loop() {
		readings, failures := evaluate(rec, t0, set)
		if len(readings) != 2 || len(failures) != 0 {
			b.Fatalf("readings %v, failures %v", readings, failures)
		}
	}
}

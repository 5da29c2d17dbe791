package faults

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFaultAggregatorKill: the aggregator is killed with SIGKILL while it
// consumes, several times, and restarted each time. Batches stored but not
// committed are delivered again and must not count twice.
func TestFaultAggregatorKill(t *testing.T) {
	kills := 2
	if full() {
		kills = 5
	}
	sc := newScenario(t, "aggregator SIGKILL", stackOptions{aggregators: 1}, loadSpec{})
	sc.warmUp(300)
	agg := sc.s.aggregators[0]
	for i := range kills {
		// Kill while records keep arriving, at a random point of a batch:
		// after its commits moved on, so every round kills fresh work.
		before, _, _ := agg.metrics()
		waitUntil(30*time.Second, func() bool {
			m, _, err := agg.metrics()
			return err == nil && m["tally_aggregator_commits_total"] > before["tally_aggregator_commits_total"]
		})
		time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
		agg.kill()
		sc.t.Logf("kill %d: aggregator killed with %d events acknowledged", i+1, sc.l.acked())
		sc.keepLoading(time.Second)
		agg.start()
		agg.waitReady(readyTimout)
	}
	recovered := time.Now()
	sc.keepLoading(2 * time.Second)
	sc.note("%d kills", kills)
	sc.finish(recovered)
}

// TestFaultClickHouseOutage: ClickHouse is stopped for 20-30 s under load.
// Ingest keeps accepting, the aggregator retries without committing, its
// readiness turns red and then green again.
func TestFaultClickHouseOutage(t *testing.T) {
	skipUnlessFull(t)
	sc := newScenario(t, "clickhouse outage", stackOptions{aggregators: 1}, loadSpec{})
	sc.warmUp(500)
	agg := sc.s.aggregators[0]
	outage := 20*time.Second + time.Duration(rand.IntN(10))*time.Second
	sc.s.stopClickHouse()
	stopped, ackedAtStop := time.Now(), sc.l.acked()
	var red atomic.Bool
	var redBody string
	if waitUntil(outage, func() bool {
		ok, body := agg.ready()
		if !ok {
			red.Store(true)
			redBody = body
		}
		return !ok
	}) {
		sc.note("aggregator not ready %s after the stop", time.Since(stopped).Round(100*time.Millisecond))
		t.Logf("readiness while ClickHouse is down: %s", redBody)
	} else {
		t.Errorf("aggregator stayed ready for the whole %s ClickHouse outage", outage)
	}
	time.Sleep(time.Until(stopped.Add(outage)))
	ackedDuringOutage := sc.l.acked() - ackedAtStop
	if ackedDuringOutage == 0 {
		t.Errorf("ingest acknowledged nothing while ClickHouse was down")
	}
	sc.s.startClickHouse()
	recovered := time.Now()
	if !waitUntil(2*time.Minute, func() bool { ok, _ := agg.ready(); return ok }) {
		_, body := agg.ready()
		t.Errorf("aggregator not ready 2 minutes after ClickHouse came back: %s", body)
	} else {
		sc.note("outage %s, %d events acknowledged during it, ready again %s after restart",
			outage, ackedDuringOutage, time.Since(recovered).Round(100*time.Millisecond))
	}
	sc.keepLoading(2 * time.Second)
	sc.finish(recovered)
}

// TestFaultBroker: kfake's control hooks fail produce requests, answer
// REQUEST_TIMED_OUT after writing (a dropped acknowledgement), and hold
// produce requests longer than ingest waits (a delayed acknowledgement):
// ingest answers 503, the client re-sends the same events, and each counts
// once whether or not the first attempt was written. Then the broker is
// restarted on its data directory.
func TestFaultBroker(t *testing.T) {
	sc := newScenario(t, "broker faults", stackOptions{
		aggregators: 1,
		// Shorter than the held produce requests below.
		ingestArgs: []string{"-ingest.produce-timeout=2s"},
	}, loadSpec{})
	sc.warmUp(300)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var cluster *kfake.Cluster
	sc.s.withCluster(func(c *kfake.Cluster) { cluster = c })

	// 1. Produce errors: not written, answered with an error.
	h := cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: 20},
		kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.UnknownServerError, Count: 10})
	if err := h.Wait(ctx, 30); err != nil {
		t.Fatalf("produce errors: %d of 30 injected: %v", h.Hits(), err)
	}
	// 2. Dropped acknowledgements: written, answered REQUEST_TIMED_OUT.
	h = cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.RequestTimedOut, Count: 20})
	if err := h.Wait(ctx, 20); err != nil {
		t.Fatalf("dropped acks: %d of 20 injected: %v", h.Hits(), err)
	}
	// 3. Delayed acknowledgements: held for longer than ingest's produce
	// timeout, then written and answered (to nobody listening).
	var held atomic.Int32
	cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if held.Add(1) > 8 {
			cluster.DropControl()
			return nil, nil, false
		}
		cluster.SleepControl(func() { time.Sleep(3 * time.Second) })
		return nil, nil, false
	})
	if !waitUntil(time.Minute, func() bool { return held.Load() > 8 }) {
		t.Fatalf("delayed acks: only %d produce requests held", held.Load())
	}
	sc.keepLoading(time.Second)
	ing, _, _ := sc.s.ingest.metrics()
	sc.note("produce 503s so far %v", sc.l.rec.requests["503"])
	t.Logf("ingest produce errors: %v", ing["tally_ingest_kafka_produce_errors_total"])
	// 4. Broker restart on its data directory.
	restarts := 1
	for range restarts {
		sc.s.restartBroker(2 * time.Second)
	}
	recovered := time.Now()
	sc.keepLoading(3 * time.Second)
	sc.finish(recovered)
}

// TestFaultRebalance: three aggregators share the group; one is killed
// and a fourth added under load, so partitions move twice.
func TestFaultRebalance(t *testing.T) {
	skipUnlessFull(t)
	sc := newScenario(t, "rebalance", stackOptions{aggregators: 3}, loadSpec{})
	sc.warmUp(500)
	sc.s.aggregators[0].kill()
	sc.keepLoading(2 * time.Second)
	added := sc.s.addAggregator()
	added.waitReady(readyTimout)
	for _, a := range sc.s.aggregators[1:] {
		a.waitReady(readyTimout)
	}
	recovered := time.Now()
	sc.keepLoading(3 * time.Second)
	sc.note("killed %s, added %s", sc.s.aggregators[0].name, added.name)
	sc.finish(recovered)
}

// TestFaultRetryStorm: every batch is sent two or three times at once from
// concurrent clients, and about a third of them are then re-sent with
// changed values, models, sessions and times: the first acknowledged
// version wins.
func TestFaultRetryStorm(t *testing.T) {
	events := 1500
	if full() {
		events = 20000
	}
	sc := newScenario(t, "client retry storm", stackOptions{aggregators: 1}, loadSpec{storm: true, maxEvents: events})
	sc.l.wg.Wait() // the load ends by itself
	sc.note("%d acknowledgements for %d identities", sc.l.rec.ackedN, sc.l.acked())
	sc.finish(time.Now())
}

// TestFaultPoison: unmeterable values mixed into the load are
// dead-lettered with their reasons while every other event and meter is
// counted, and the largest event ingest accepts, valid or poisoned, and
// the longest number it accepts stop no partition.
func TestFaultPoison(t *testing.T) {
	sc := newScenario(t, "poison events", stackOptions{aggregators: 1}, loadSpec{poison: 0.3})
	sc.warmUp(300)
	largest := sc.largestAccepted()
	sc.note("largest event accepted: %d bytes", largest.size)
	for _, e := range []*event{
		sc.bigEvent(largest.pad, "", "ok"),       // valid, metered
		sc.bigEvent(largest.pad, `"lots"`, "ok"), // its dead letter quotes a large record
		sc.bigEvent(largest.pad, `"lots"`, "error"),
	} {
		sc.l.send(orgs[0], []*event{e})
	}
	// A number as long as the largest event allows: ingest may refuse it
	// (400), otherwise it must be dead-lettered, not stall the partition.
	huge := sc.bigEvent(0, "9"+strings.Repeat("0", largest.pad-10), "ok")
	before := sc.l.rec.rejected
	sc.l.send(orgs[0], []*event{huge})
	if sc.l.rec.rejected > before {
		sc.note("a %d-digit number is refused at ingest", largest.pad-9)
	} else {
		sc.note("a %d-digit number is accepted at ingest", largest.pad-9)
	}
	recovered := time.Now()
	sc.keepLoading(2 * time.Second)
	sc.finish(recovered)
	for _, a := range sc.s.aggregators {
		if ok, body := a.ready(); !ok {
			t.Errorf("%s not ready after the poison: %s", a.name, body)
		}
	}
}

// TestFaultStalledConsumer: the broker fails every fetch of the event
// topic while records keep arriving, so the aggregator holds its
// partitions but makes no progress: readiness must fail and the lag
// metric must show it, then both recover when fetching works again.
func TestFaultStalledConsumer(t *testing.T) {
	skipUnlessFull(t)
	const stall = 4 * time.Second
	sc := newScenario(t, "stalled consumer", stackOptions{
		aggregators:    1,
		aggregatorArgs: []string{"-aggregator.stall-timeout=" + stall.String()},
	}, loadSpec{})
	sc.warmUp(300)
	agg := sc.s.aggregators[0]
	var cluster *kfake.Cluster
	sc.s.withCluster(func(c *kfake.Cluster) { cluster = c })
	h := cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: "tally-events", Err: kerr.KafkaStorageError, Count: -1})
	began := time.Now()
	var body string
	if waitUntil(stall+time.Minute, func() bool { var ok bool; ok, body = agg.ready(); return !ok }) {
		sc.note("readiness failed %s after fetching stopped", time.Since(began).Round(100*time.Millisecond))
		t.Logf("readiness while stalled: %s", body)
	} else {
		t.Errorf("aggregator stayed ready for %s while no fetch succeeded", stall+time.Minute)
	}
	m, lines, err := agg.metrics()
	if err != nil {
		t.Errorf("metrics while stalled: %v", err)
	}
	if lag := m["tally_aggregator_consumer_lag_messages"]; lag <= 0 {
		t.Errorf("tally_aggregator_consumer_lag_messages = %v while stalled, want > 0", lag)
	} else {
		sc.note("lag %v while stalled", lag)
	}
	for _, l := range lines {
		if strings.Contains(l, "stall") {
			t.Logf("stall metric: %s", l)
		}
	}
	h.Remove()
	recovered := time.Now()
	if !waitUntil(time.Minute, func() bool { ok, _ := agg.ready(); return ok }) {
		_, body := agg.ready()
		t.Errorf("aggregator not ready a minute after fetching works again: %s", body)
	}
	sc.keepLoading(2 * time.Second)
	sc.finish(recovered)
}

package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"syscall"
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

// TestFaultClickHouseOutage: ClickHouse is stopped for 20-30 s under load,
// once with SIGTERM and once with SIGKILL, and restarted on its data
// directory. Ingest keeps accepting, the aggregator retries without
// committing, its readiness turns red and then green again.
func TestFaultClickHouseOutage(t *testing.T) {
	skipUnlessFull(t)
	sc := newScenario(t, "clickhouse outage", stackOptions{aggregators: 1}, loadSpec{})
	sc.warmUp(500)
	var recovered time.Time
	for _, how := range []string{"SIGTERM", "SIGKILL"} {
		recovered = sc.clickHouseOutage(how, 20*time.Second+time.Duration(rand.IntN(10))*time.Second)
		sc.keepLoading(3 * time.Second)
	}
	sc.finish(recovered)
}

func (sc *scenario) clickHouseOutage(how string, outage time.Duration) (recovered time.Time) {
	t := sc.t
	agg := sc.s.aggregators[0]
	if how == "SIGKILL" {
		sc.s.killClickHouse()
	} else {
		sc.s.stopClickHouse()
	}
	stopped, ackedAtStop := time.Now(), sc.l.acked()
	var redBody string
	if waitUntil(outage, func() bool { ok, body := agg.ready(); redBody = body; return !ok }) {
		t.Logf("%s: readiness while ClickHouse is down: %s", how, redBody)
		if !strings.Contains(redBody, "clickhouse") {
			t.Errorf("%s: readiness failed without naming clickhouse: %s", how, redBody)
		}
	} else {
		t.Errorf("%s: aggregator stayed ready for the whole %s ClickHouse outage", how, outage)
	}
	redAfter := time.Since(stopped)
	time.Sleep(time.Until(stopped.Add(outage)))
	during := sc.l.acked() - ackedAtStop
	if during == 0 {
		t.Errorf("%s: ingest acknowledged nothing while ClickHouse was down", how)
	}
	sc.s.startClickHouse()
	recovered = time.Now()
	if !waitUntil(2*time.Minute, func() bool { ok, _ := agg.ready(); return ok }) {
		_, body := agg.ready()
		t.Errorf("%s: aggregator not ready 2 minutes after ClickHouse came back: %s", how, body)
	}
	sc.note("%s %s: not ready after %s, %d events acknowledged meanwhile, ready %s after restart",
		how, outage, redAfter.Round(100*time.Millisecond), during, time.Since(recovered).Round(100*time.Millisecond))
	return recovered
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
	t.Logf("first 503 answer: %s", sc.l.rec.first503)
	t.Logf("ingest produce errors: %v", ing["tally_ingest_kafka_produce_errors_total"])
	// 4. Broker restarts on its data directory, the longer ones while
	// ingest's produce timeout passes (503s) and aggregators lose their
	// group session.
	downs := []time.Duration{time.Second}
	if full() {
		downs = []time.Duration{time.Second, 4 * time.Second, 8 * time.Second}
	}
	for _, down := range downs {
		if down < 8*time.Second {
			sc.s.restartBroker(down)
			sc.keepLoading(3 * time.Second)
			continue
		}
		// A long outage: readiness of ingest and the aggregator must say so.
		sc.s.stopBroker()
		stopped := time.Now()
		for _, p := range []*proc{sc.s.ingest, sc.s.aggregators[0]} {
			var body string
			if !waitUntil(down, func() bool { var ok bool; ok, body = p.ready(); return !ok }) {
				t.Errorf("%s stayed ready while the broker was down for %s", p.name, down)
			} else if !strings.Contains(body, "kafka") {
				t.Errorf("%s: readiness failed without naming kafka: %s", p.name, body)
			}
		}
		time.Sleep(time.Until(stopped.Add(down)))
		sc.s.startBroker()
		for _, p := range []*proc{sc.s.ingest, sc.s.aggregators[0]} {
			if !waitUntil(time.Minute, func() bool { ok, _ := p.ready(); return ok }) {
				_, body := p.ready()
				t.Errorf("%s not ready a minute after the broker came back: %s", p.name, body)
			}
		}
		sc.keepLoading(3 * time.Second)
	}
	sc.note("broker restarted after %v down", downs)
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
// version wins, also when it is the unmeterable one (some batches carry a
// poison event whose changed re-send would be valid).
func TestFaultRetryStorm(t *testing.T) {
	events := 1500
	if full() {
		events = 20000
	}
	sc := newScenario(t, "client retry storm", stackOptions{aggregators: 1}, loadSpec{storm: true, maxEvents: events, poison: 0.1})
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
	// The largest event ingest accepts, valid and poisoned: its dead
	// letter cannot repeat the whole record.
	pad := sc.largest(0, 4<<20, func(n int) *event { return sc.bigEvent(n, "", "ok") })
	sc.note("largest event accepted: %d bytes", len(sc.bigEvent(pad, "", "ok").appendJSON(nil)))
	for _, e := range []*event{
		sc.bigEvent(pad, "", "ok"),
		sc.bigEvent(pad, `"lots"`, "ok"),
		sc.bigEvent(pad, `"lots"`, "error"),
	} {
		sc.l.send(orgs[0], []*event{e})
	}
	// The longest number ingest accepts, in an event with nothing else:
	// its dead letter's message quotes the number, which must not make the
	// dead letter too large to write (defect 1). With an exponent, the
	// same event size holds a number 10,000 digits longer once expanded.
	n := sc.largest(1, 4<<20, func(n int) *event { return numberEvent(digits(n), true) })
	fraction := func(n int) string { return "0." + strings.Repeat("1", n) }
	f := sc.largest(1, 4<<20, func(n int) *event { return numberEvent(fraction(n), true) })
	sc.note("longest number accepted: %d digits, %d decimals", n, f)
	refused := []string{}
	for _, e := range []*event{
		numberEvent(digits(n), false),
		numberEvent(digits(max(n-6, 1))+"e10000", false),
		numberEvent(fraction(f), false),
		numberEvent(fraction(max(f-6, 1))+"e-1000", false),
		// Short literals that expand to long numbers.
		sc.bigEvent(0, "9e10000", "ok"), sc.bigEvent(0, "1e-10000", "ok"),
		sc.bigEvent(0, "1e-1000", "ok"), sc.bigEvent(0, "9e2000000", "ok"), sc.bigEvent(0, "-9e10000", "ok"),
	} {
		if ok, why := sc.probeWhy(e); !ok {
			label := e.tokens
			if len(label) > 16 {
				label = fmt.Sprintf("%s…%s (%d chars)", label[:6], label[len(label)-6:], len(label))
			}
			refused = append(refused, label)
			t.Logf("refused: %s", truncate(why, 300))
		}
	}
	sc.note("refused at ingest: %v", refused)
	recovered := time.Now()
	sc.keepLoading(2 * time.Second)
	sc.finish(recovered)
	for _, a := range sc.s.aggregators {
		if ok, body := a.ready(); !ok {
			t.Errorf("%s not ready after the poison: %s", a.name, body)
		}
	}
}

// TestFaultStalledConsumer: two ways a consumer stops making progress.
// First the broker fails every fetch of the event topic while records keep
// arriving, so both aggregators hold their partitions but make no
// progress: readiness must fail naming the stall and the lag metric must
// show it, then both recover when fetching works again. Then one
// aggregator is paused (SIGSTOP) beyond its session timeout, so it loses
// its assignment: the other must take every partition over, and the
// paused one, resumed, must rejoin without counting anything twice.
func TestFaultStalledConsumer(t *testing.T) {
	skipUnlessFull(t)
	const stall = 4 * time.Second
	sc := newScenario(t, "stalled consumer", stackOptions{
		aggregators:    2,
		aggregatorArgs: []string{"-aggregator.stall-timeout=" + stall.String()},
	}, loadSpec{})
	sc.warmUp(300)
	aggs := sc.s.aggregators

	// 1. No progress while lag grows.
	var cluster *kfake.Cluster
	sc.s.withCluster(func(c *kfake.Cluster) { cluster = c })
	h := cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: "tally-events", Err: kerr.KafkaStorageError, Count: -1})
	began := time.Now()
	for _, a := range aggs {
		var body string
		if waitUntil(stall+time.Minute, func() bool { var ok bool; ok, body = a.ready(); return !ok }) {
			t.Logf("%s readiness while stalled: %s", a.name, body)
			if !strings.Contains(body, "stall") {
				t.Errorf("%s: readiness failed without naming the stall: %s", a.name, body)
			}
		} else {
			t.Errorf("%s stayed ready for %s while no fetch succeeded", a.name, stall+time.Minute)
		}
	}
	sc.note("readiness failed %s after fetching stopped", time.Since(began).Round(100*time.Millisecond))
	lag := 0.0
	for _, a := range aggs {
		m, lines, err := a.metrics()
		if err != nil {
			t.Errorf("%s metrics while stalled: %v", a.name, err)
		}
		lag += m["tally_aggregator_consumer_lag_messages"]
		for _, l := range lines {
			if strings.Contains(l, "stall") {
				sc.note("%s: %s", a.name, l)
			}
		}
	}
	if lag <= 0 {
		t.Errorf("tally_aggregator_consumer_lag_messages = %v while stalled, want > 0", lag)
	}
	h.Remove()
	unstalled := time.Now()
	for _, a := range aggs {
		if !waitUntil(2*time.Minute, func() bool { ok, _ := a.ready(); return ok }) {
			_, body := a.ready()
			t.Errorf("%s not ready 2 minutes after fetching works again: %s", a.name, body)
		}
	}
	sc.note("lag %v while stalled, ready %s after fetching works again", lag, time.Since(unstalled).Round(100*time.Millisecond))

	// 2. Assignment lost: paused past the session timeout.
	aggs[0].signal(syscall.SIGSTOP)
	paused := time.Now()
	if waitUntil(time.Minute, func() bool {
		m, _, err := aggs[1].metrics()
		return err == nil && m["tally_aggregator_assigned_partitions"] == 6
	}) {
		sc.note("%s took all partitions %s after %s was paused", aggs[1].name, time.Since(paused).Round(100*time.Millisecond), aggs[0].name)
	} else {
		t.Errorf("%s did not take over the partitions of paused %s within a minute", aggs[1].name, aggs[0].name)
	}
	sc.keepLoading(2 * time.Second)
	aggs[0].signal(syscall.SIGCONT)
	recovered := time.Now()
	for _, a := range aggs {
		if !waitUntil(2*time.Minute, func() bool { ok, _ := a.ready(); return ok }) {
			_, body := a.ready()
			t.Errorf("%s not ready 2 minutes after the paused member resumed: %s", a.name, body)
		}
	}
	sc.keepLoading(2 * time.Second)
	sc.finish(recovered)
}

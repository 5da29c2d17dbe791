package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Sizes of the short (make test) and full (make test-faults) runs.
type sizes struct {
	rate        float64       // events per second per organization
	batchMax    int           // events per request, at most
	clients     int           // concurrent senders
	customers   int           // customers per organization
	converge    time.Duration // how long usage may take to become exact after recovery
	hardTimeout time.Duration // how long a batch may stay unacknowledged
}

func sizing() sizes {
	if full() {
		return sizes{rate: 1000, batchMax: 250, clients: 6, customers: 60, converge: 3 * time.Minute, hardTimeout: 5 * time.Minute}
	}
	return sizes{rate: 150, batchMax: 60, clients: 3, customers: 12, converge: 2 * time.Minute, hardTimeout: 3 * time.Minute}
}

// skipUnlessFull skips a fault that runs only in the full suite.
func skipUnlessFull(t *testing.T) {
	t.Helper()
	if !full() {
		t.Skipf("full suite only: make test-faults (%s=full)", envFull)
	}
}

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts ClickHouse, a broker and tally processes")
	}
}

// scenario is one fault run: stack, load, the fault, and the verdict.
type scenario struct {
	t     *testing.T
	name  string
	s     *stack
	l     *load
	sz    sizes
	notes []string
}

func newScenario(t *testing.T, name string, opts stackOptions, spec loadSpec) *scenario {
	t.Helper()
	skipShort(t)
	sz := sizing()
	if spec.clients == 0 {
		spec.clients = sz.clients
	}
	if spec.batchMax == 0 {
		spec.batchMax = sz.batchMax
	}
	if spec.customers == 0 {
		spec.customers = sz.customers
	}
	if spec.rate == 0 && spec.maxEvents == 0 {
		spec.rate = sz.rate
	}
	sc := &scenario{t: t, name: name, sz: sz}
	sc.s = newStack(t, opts)
	sc.l = startLoad(sc.s, spec, sz.hardTimeout)
	t.Cleanup(sc.l.cancelGen)
	return sc
}

func (sc *scenario) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	sc.t.Log(msg)
	sc.notes = append(sc.notes, msg)
}

// warmUp waits until n identities are acknowledged.
func (sc *scenario) warmUp(n int) {
	sc.t.Helper()
	if !sc.l.waitAcked(n, time.Minute) {
		sc.t.Fatalf("only %d events acknowledged in a minute before the fault; %v", sc.l.acked(), sc.l.rec.requests)
	}
}

// keepLoading lets the load run for d more.
func (sc *scenario) keepLoading(d time.Duration) { time.Sleep(d) }

// finish stops the load, waits until usage equals the oracle (from
// recovered on, the time to recover), checks dead letters, reports the
// table row and fails the test on any difference.
func (sc *scenario) finish(recovered time.Time) {
	t := sc.t
	t.Helper()
	sc.l.stop()
	rec := sc.l.rec
	ex := expect(rec.events())
	t.Logf("load: %d identities acknowledged (%d acknowledgements), %d rejected, requests by answer %v",
		len(rec.acked), rec.ackedN, rec.rejected, rec.requests)
	r := row{fault: sc.name, acknowledged: ex.acknowledged, deadLetters: ex.deadLetters, recovery: -1, logRecords: sc.s.logRecords()}
	if rec.failed > 0 {
		t.Errorf("%d events were never acknowledged: %s", rec.failed, rec.firstFail)
	}
	cmp, at := sc.s.converge(ex, sc.sz.converge)
	r.counted, r.duplicates, r.lost, r.wrongCells = cmp.counted, cmp.duplicates, cmp.lost, cmp.wrong
	if !at.IsZero() {
		r.recovery = at.Sub(recovered)
	} else {
		t.Errorf("usage never equal to the acknowledged events within %s of the end of the load: %s", sc.sz.converge, cmp)
	}
	if cmp.ok() && len(ex.values) > 0 {
		sc.checkOracleSees(rec.events())
	}
	if cmp.counted != ex.countable && cmp.ok() {
		t.Errorf("COUNT meters count %d events, oracle %d", cmp.counted, ex.countable)
	}
	if cmp.ok() {
		if n, reasons := sc.s.deadLetterCount(); n != ex.deadLetters {
			t.Errorf("%d (event, meter) dead letters, want %d; by reason %v", n, ex.deadLetters, reasons)
		} else if n > 0 {
			sc.note("dead letters by reason %v, longest message %d bytes", reasons, sc.s.longestDeadLetterMessage())
		}
	}
	for _, n := range sc.notes {
		if r.note != "" {
			r.note += "; "
		}
		r.note += n
	}
	report(r)
	t.Logf("%s: %s", sc.name, cmp)
}

// deadLetterCount counts the (organization, customer, event, meter) pairs
// dead-lettered, and their reasons.
func (s *stack) deadLetterCount() (int, map[string]uint64) {
	s.t.Helper()
	conn := s.conn()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, `SELECT reason, count() FROM (
		SELECT DISTINCT org_id, customer_id, event_id, meter_key, reason FROM dead_letters
		WHERE org_id IN ('org-a', 'org-b') AND message != ''
	) GROUP BY reason ORDER BY reason`)
	if err != nil {
		s.t.Fatalf("count dead letters: %v", err)
	}
	defer rows.Close()
	total := 0
	reasons := map[string]uint64{}
	for rows.Next() {
		var reason string
		var n uint64
		if err := rows.Scan(&reason, &n); err != nil {
			s.t.Fatal(err)
		}
		reasons[reason] = n
		total += int(n)
	}
	return total, reasons
}

// waitUntil polls cond every 100 ms until it holds or timeout passes.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// checkOracleSees proves the comparison is not vacuous: with one COUNTed
// event left out of the oracle, the same answer must show a duplicate.
func (sc *scenario) checkOracleSees(events []*event) {
	sc.t.Helper()
	for i, e := range events {
		if _, ok := scalarOf(e.model); !ok {
			continue
		}
		rest := append(append([]*event{}, events[:i]...), events[i+1:]...)
		if cmp := sc.s.compare(expect(rest)); cmp.duplicates != 1 || cmp.lost != 0 {
			sc.t.Errorf("oracle without event %s: %s, want exactly 1 duplicate", e.id, cmp)
		}
		return
	}
}

// logRecords counts the records in the event topic (nothing trims it
// here): more than the acknowledged identities means re-sent or retried
// events reached the log and had to be deduplicated.
func (s *stack) logRecords() int64 {
	var n int64
	s.withCluster(func(c *kfake.Cluster) {
		for _, p := range c.PartitionInfos("tally-events") {
			n += p.HighWatermark - p.LogStartOffset
		}
	})
	return n
}

// longestDeadLetterMessage is the length of the longest dead-letter
// message: quoted values must be truncated, not repeated in full.
func (s *stack) longestDeadLetterMessage() uint64 {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n uint64
	if err := s.conn().QueryRow(ctx, "SELECT max(length(message)) FROM dead_letters").Scan(&n); err != nil {
		s.t.Errorf("longest dead letter message: %v", err)
	}
	return n
}

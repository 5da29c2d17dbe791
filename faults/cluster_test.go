package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// envCluster selects the cluster test's load: "full" (make test-cluster)
// for the larger one; otherwise the short one, which `go test ./faults`
// (make test) runs in about 90 s.
const envCluster = "TALLY_CLUSTER"

func clusterFull() bool { return os.Getenv(envCluster) == "full" }

// clusterSizes are the loads of the cluster test.
type clusterSizes struct {
	sizes
	idle   time.Duration // no load, to measure what the stack costs idle
	steady time.Duration // load before the kill
	down   time.Duration // how long the replica and the aggregator stay down
}

// envClusterRate overrides the cluster test's load, in events/s per
// organization (there are two), for measuring: how far the cluster keeps
// up on this machine.
const envClusterRate = "TALLY_CLUSTER_RATE"

// envClusterAggregatorArgs adds flags to the aggregators of the cluster
// test (space-separated), for measuring: -aggregator.batch-linger=1s.
const envClusterAggregatorArgs = "TALLY_CLUSTER_AGGREGATOR_ARGS"

func clusterSizing() clusterSizes {
	sz := clusterSizingOf(clusterFull())
	if r, err := strconv.ParseFloat(os.Getenv(envClusterRate), 64); err == nil && r > 0 {
		sz.rate = r
	}
	return sz
}

func clusterSizingOf(full bool) clusterSizes {
	if full {
		return clusterSizes{
			sizes: sizes{rate: 400, batchMax: 200, clients: 6, customers: 60, converge: 4 * time.Minute, hardTimeout: 8 * time.Minute},
			idle:  10 * time.Second, steady: 40 * time.Second, down: 20 * time.Second,
		}
	}
	return clusterSizes{
		sizes: sizes{rate: 60, batchMax: 40, clients: 4, customers: 12, converge: 3 * time.Minute, hardTimeout: 5 * time.Minute},
		idle:  3 * time.Second, steady: 15 * time.Second, down: 12 * time.Second,
	}
}

// TestClusterKillReplicaAndAggregator runs Tally as it runs in production:
// ClickHouse as 2 shards x 2 replicas with ZooKeeper, a three-broker
// Kafka, three aggregators in one group writing with insert_quorum=2, two
// ingest processes taking the load of several producers, two query
// processes. Under load one ClickHouse replica and one aggregator are
// killed with SIGKILL, stay down, and are restarted; then every
// (organization, meter, customer, day, group) total served by each query
// process must equal the oracle's from the acknowledged events. It also
// measures the figures SCALING.md quotes: events/s accepted, events/s
// becoming queryable during the load, and the time to recover.
func TestClusterKillReplicaAndAggregator(t *testing.T) {
	skipShort(t)
	sz := clusterSizing()
	sc := &scenario{t: t, name: "cluster kill (" + map[bool]string{true: "full", false: "short"}[clusterFull()] + ")", sz: sz.sizes}
	// Every replica of a shard has each of the aggregators' inserts before
	// it returns (clusterArgs: -clickhouse.insert-quorum=2), so the
	// first-version lookup on any replica sees it.
	sc.s = newClusterStack(t, stackOptions{aggregators: 3, aggregatorArgs: strings.Fields(os.Getenv(envClusterAggregatorArgs))})
	sc.s.checkCatalogLists()
	// What the stack costs idle (ClickHouse's background work, ZooKeeper
	// sessions, the aggregators' polling), subtracted from the costs
	// under load below.
	idleFrom, idleAt := sc.s.cpu(), time.Now()
	time.Sleep(sz.idle)
	idle := sc.s.cpu().perSecond(idleFrom, time.Since(idleAt))
	spec := loadSpec{clients: sz.clients, batchMax: sz.batchMax, customers: sz.customers, rate: sz.rate}
	loadStart := time.Now()
	sc.l = startLoad(sc.s, spec, sz.hardTimeout)
	t.Cleanup(sc.l.cancelGen)
	samples := sc.s.sampleCounted(loadStart)
	defer samples.stop()

	sc.warmUp(200)
	cpuFrom, ackedFrom, countedFrom, steadyStart := sc.s.cpu(), sc.l.acked(), sc.s.countedNow(), time.Now()
	insertsFrom, rowsFrom := sc.s.inserts()
	sc.keepLoading(sz.steady)
	steadyEnd := time.Now()
	cpuTo, ackedTo, countedTo := sc.s.cpu(), sc.l.acked(), sc.s.countedNow()
	insertsTo, rowsTo := sc.s.inserts()
	costs := cpuTo.costs(cpuFrom, idle, steadyEnd.Sub(steadyStart), int64(ackedTo-ackedFrom), countedTo-countedFrom)
	if n := insertsTo - insertsFrom; n > 0 {
		ch := cpuTo["clickhouse"] - cpuFrom["clickhouse"] - idle["clickhouse"]*steadyEnd.Sub(steadyStart).Seconds()
		costs += fmt.Sprintf("; %.0f inserts of %.0f rows on average meanwhile, ClickHouse %.0f ms CPU per insert",
			n, (rowsTo-rowsFrom)/n, 1000*ch/n)
	}

	// The fault: shard 2's first replica and the second aggregator die at
	// once; the third aggregator's first server is that replica.
	const shard, replica = 1, 0
	agg := sc.s.aggregators[1]
	killed := time.Now()
	ackedAtKill := sc.l.acked()
	if err := sc.s.chCluster.Kill(shard, replica); err != nil {
		t.Fatalf("kill clickhouse replica: %v", err)
	}
	agg.kill()
	t.Logf("killed clickhouse %s and %s with %d events acknowledged", sc.s.chCluster.Addr(shard, replica), agg.name, ackedAtKill)
	sc.keepLoading(sz.down)
	ackedDuringOutage := sc.l.acked() - ackedAtKill

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := sc.s.chCluster.Restart(ctx, shard, replica); err != nil {
		t.Fatalf("restart clickhouse replica: %v", err)
	}
	agg.start()
	recovered := time.Now()
	ackedAtRestart := sc.l.acked()
	for _, a := range sc.s.aggregators {
		a.waitReady(3 * time.Minute)
	}
	readyAfter := time.Since(recovered)
	sc.keepLoading(3 * time.Second)
	loadEnd := time.Now()
	sc.note("killed replica s%dr%d and %s for %s: %d events acknowledged meanwhile, aggregators ready %s after the restart",
		shard+1, replica+1, agg.name, recovered.Sub(killed).Round(100*time.Millisecond), ackedDuringOutage,
		readyAfter.Round(100*time.Millisecond))

	sc.finish(recovered)
	samples.stop()
	sc.s.checkCustomerReads(expect(sc.l.rec.events()), "cust-0", "cust-3")

	// Figures for SCALING.md.
	acked := sc.l.acked()
	loadFor := loadEnd.Sub(loadStart)
	caughtUp := samples.reached(int64(ackedAtRestart), recovered)
	steadyRate := samples.rate(loadStart.Add(5*time.Second), steadyEnd)
	figures := fmt.Sprintf("accepted %.0f events/s (%d over %s), queryable %.0f events/s before the kill, the backlog at the restart queryable %s after it; %s",
		float64(acked)/loadFor.Seconds(), acked, loadFor.Round(100*time.Millisecond), steadyRate, fmtSince(caughtUp, recovered),
		sc.s.insertFigures())
	figures += "; " + costs
	t.Logf("SCALING figures: %s", figures)
	t.Logf("queryable events over time: %s", samples)
	table.mu.Lock()
	table.rows[len(table.rows)-1].note += "; " + figures
	table.mu.Unlock()
}

// insertFigures sums the aggregators' insert metrics: the cost of
// quorum inserts into a replicated shard.
func (s *stack) insertFigures() string {
	var sum, count, rows, retries, rowsCount float64
	for _, a := range s.aggregators {
		m, _, err := a.metrics()
		if err != nil {
			continue
		}
		sum += m["tally_aggregator_insert_duration_seconds_sum"]
		count += m["tally_aggregator_insert_duration_seconds_count"]
		rows += m["tally_aggregator_insert_batch_rows_sum"]
		rowsCount += m["tally_aggregator_insert_batch_rows_count"]
		retries += m["tally_aggregator_insert_retries_total"]
	}
	if count == 0 || rowsCount == 0 {
		return "no insert metrics"
	}
	return fmt.Sprintf("inserts since the restarts: %.0f, %.0f ms and %.0f rows each on average, %.0f retried",
		count, 1000*sum/count, rows/rowsCount, retries)
}

// inserts is the number of inserts the running aggregators made, and
// their rows.
func (s *stack) inserts() (n, rows float64) {
	for _, a := range s.aggregators {
		if m, _, err := a.metrics(); err == nil {
			n += m["tally_aggregator_insert_batch_rows_count"]
			rows += m["tally_aggregator_insert_batch_rows_sum"]
		}
	}
	return n, rows
}

// String lists about ten samples, for the log.
func (sm *samples) String() string {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	var b bytes.Buffer
	step := max(1, len(sm.points)/10)
	for i := 0; i < len(sm.points); i += step {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", sm.points[i].at.Format("15:04:05"), sm.points[i].n)
	}
	return b.String()
}

func fmtSince(at, since time.Time) string {
	if at.IsZero() {
		return "never (during the load)"
	}
	return at.Sub(since).Round(100 * time.Millisecond).String()
}

// checkCatalogLists creates two customers through one query process and
// lists them through each: a page of the catalog chooses its keys with a
// subquery on the same table, which a Distributed table refuses unless it
// is GLOBAL (issue 8).
func (s *stack) checkCatalogLists() {
	s.t.Helper()
	o := orgs[0]
	for _, id := range []string{"cluster-c1", "cluster-c2"} {
		body := fmt.Sprintf(`{"external_id": %q, "name": "cluster test"}`, id)
		if code, resp := s.do(http.MethodPost, "http://"+s.queries[0].addr+"/api/v1/customers", o.key, []byte(body)); code != http.StatusCreated {
			s.t.Fatalf("create customer %s: %d %s", id, code, resp)
		}
	}
	for _, q := range s.queries {
		var page struct {
			Data []struct {
				ExternalID string `json:"external_id"`
			} `json:"data"`
		}
		ok := waitUntil(30*time.Second, func() bool {
			code, resp := s.do(http.MethodGet, "http://"+q.addr+"/api/v1/customers?limit=10", o.key, nil)
			if code != http.StatusOK {
				s.t.Fatalf("list customers through %s: %d %s", q.name, code, resp)
			}
			page.Data = nil
			return json.Unmarshal(resp, &page) == nil && len(page.Data) == 2
		})
		if !ok {
			s.t.Fatalf("list customers through %s: %v, want cluster-c1 and cluster-c2", q.name, page.Data)
		}
	}
}

// counted is one sample of the events the COUNT meter counts.
type counted struct {
	at time.Time
	n  int64
}

// samples polls the total of the COUNT meter (both organizations, every
// window) through the query processes in turn, once a second.
type samples struct {
	mu     sync.Mutex
	points []counted
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (s *stack) sampleCounted(from time.Time) *samples {
	ctx, cancel := context.WithCancel(context.Background())
	sm := &samples{cancel: cancel, done: make(chan struct{})}
	lo := from.UTC().Truncate(24 * time.Hour).Add(-96 * time.Hour)
	go func() {
		defer close(sm.done)
		for i := 0; ctx.Err() == nil; i++ {
			q := s.queries[i%len(s.queries)]
			var total int64
			ok := true
			for _, o := range orgs {
				n, err := s.totalCount(q, o, lo, time.Now().Add(48*time.Hour))
				if err != nil {
					ok = false
					break
				}
				total += n
			}
			if ok {
				sm.mu.Lock()
				sm.points = append(sm.points, counted{time.Now(), total})
				sm.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return sm
}

func (sm *samples) stop() {
	sm.once.Do(func() { sm.cancel(); <-sm.done })
}

// rate is the events/s that became queryable between from and to: the
// slope between the first sample at or after from and the last at or
// before to.
func (sm *samples) rate(from, to time.Time) float64 {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	var first, last *counted
	for i := range sm.points {
		p := &sm.points[i]
		if first == nil && !p.at.Before(from) {
			first = p
		}
		if !p.at.After(to) {
			last = p
		}
	}
	if first == nil || last == nil || !last.at.After(first.at) {
		return 0
	}
	return float64(last.n-first.n) / last.at.Sub(first.at).Seconds()
}

// reached is the time of the first sample after since that counts at
// least n, or zero.
func (sm *samples) reached(n int64, since time.Time) time.Time {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	for _, p := range sm.points {
		if p.at.After(since) && p.n >= n {
			return p.at
		}
	}
	return time.Time{}
}

// totalCount asks query process q for the COUNT meter's total of o.
func (s *stack) totalCount(q *proc, o org, from, to time.Time) (int64, error) {
	v := url.Values{}
	v.Set("from", from.Format(time.RFC3339))
	v.Set("to", to.UTC().Truncate(time.Hour).Format(time.RFC3339))
	code, body := s.do(http.MethodGet, "http://"+q.addr+"/api/v1/meters/f_calls/query?"+v.Encode(), o.key, nil)
	if code != http.StatusOK {
		return 0, fmt.Errorf("%s: %d %s", q.name, code, truncate(string(body), 200))
	}
	var resp struct {
		Data []struct {
			Value json.Number `json:"value"`
		} `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&resp); err != nil {
		return 0, err
	}
	var n int64
	for _, r := range resp.Data {
		d, err := decimal.NewFromString(r.Value.String())
		if err != nil {
			return 0, err
		}
		n += d.IntPart()
	}
	return n, nil
}

// cpuSnapshot is the CPU seconds each kind of process has used so far:
// ingest, aggregator, query, clickhouse (the four servers) and the test
// process (the three kfake brokers, the producers and the oracle).
type cpuSnapshot map[string]float64

func (s *stack) cpu() cpuSnapshot {
	snap := cpuSnapshot{}
	add := func(kind string, pid int) {
		if v, ok := cpuSeconds(pid); ok && pid > 0 {
			snap[kind] += v
		}
	}
	for _, p := range s.ingests {
		add("ingest", p.pid())
	}
	for _, p := range s.aggregators {
		add("aggregator", p.pid())
	}
	for _, p := range s.queries {
		add("query", p.pid())
	}
	for sh := range s.chCluster.Shards() {
		for r := range s.chCluster.Replicas() {
			if srv := s.chCluster.Server(sh, r); srv != nil {
				add("clickhouse", statusPID(filepath.Join(srv.DataDir(), "status")))
			}
		}
	}
	add("test process (kfake, producers)", os.Getpid())
	return snap
}

// statusPID reads the pid a ClickHouse server writes in its status file.
func statusPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(first, "PID:")))
	return pid
}

// perSecond is the CPU per second of wall time each kind used between
// from and s, d apart.
func (s cpuSnapshot) perSecond(from cpuSnapshot, d time.Duration) cpuSnapshot {
	out := cpuSnapshot{}
	for k, v := range s {
		out[k] = (v - from[k]) / d.Seconds()
	}
	return out
}

// costs is the CPU each kind of process used between from and s, a
// window of d, beyond what it uses idle (idle, per second), per event:
// ingest per accepted event, the aggregators and ClickHouse per event
// made queryable meanwhile.
func (s cpuSnapshot) costs(from, idle cpuSnapshot, d time.Duration, accepted, queryable int64) string {
	kinds := make([]string, 0, len(s))
	for k := range s {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var parts []string
	for _, k := range kinds {
		all := s[k] - from[k]
		used := all - idle[k]*d.Seconds()
		part := fmt.Sprintf("%s %.1f CPU s (%.2f cores idle)", k, all, idle[k])
		n := queryable
		if k == "ingest" || strings.HasPrefix(k, "test") {
			n = accepted
		}
		if k != "query" && n > 0 && used > 0 {
			part += fmt.Sprintf(" (%.0f us/event, %.0f events/s per core)", 1e6*used/float64(n), float64(n)/used)
		}
		parts = append(parts, part)
	}
	return fmt.Sprintf("CPU over %s before the kill, %d events accepted and %d made queryable (per event: beyond idle): %s",
		d.Round(time.Second), accepted, queryable, strings.Join(parts, ", "))
}

// countedNow is the COUNT meter's total of both organizations, through
// the first query process, or -1.
func (s *stack) countedNow() int64 {
	lo := time.Now().UTC().Truncate(24 * time.Hour).Add(-96 * time.Hour)
	var total int64
	for _, o := range orgs {
		n, err := s.totalCount(s.queries[0], o, lo, time.Now().Add(48*time.Hour))
		if err != nil {
			s.t.Logf("count: %v", err)
			return -1
		}
		total += n
	}
	return total
}

// checkCustomerReads compares the usage of the given customers, asked for
// by customer (the path that reads readings_by_customer), through every
// query process with the oracle.
func (s *stack) checkCustomerReads(ex expectation, customers ...string) {
	s.t.Helper()
	want := map[cell]decimal.Decimal{}
	for c, v := range ex.values {
		if slices.Contains(customers, c.customer) {
			want[c] = v
		}
	}
	from := ex.earliest.UTC().Truncate(24 * time.Hour)
	to := time.Now().UTC().Truncate(24 * time.Hour).Add(48 * time.Hour)
	for _, q := range s.queries {
		got := map[cell]decimal.Decimal{}
		for _, o := range orgs {
			for _, m := range meterDefs {
				rows, err := s.usage(q, o, m.key, from, to, customers...)
				if err != nil {
					s.t.Errorf("usage of %v: %v", customers, err)
					return
				}
				maps.Copy(got, rows)
			}
		}
		wrong := 0
		for c := range want {
			if !want[c].Equal(got[c]) {
				wrong++
			}
		}
		for c := range got {
			if _, ok := want[c]; !ok {
				wrong++
			}
		}
		if wrong > 0 || len(want) == 0 {
			s.t.Errorf("through %s, usage asked for customers %v: %d of %d cells differ from the oracle", q.name, customers, wrong, len(want))
		} else {
			s.t.Logf("through %s, usage asked for customers %v: %d cells equal", q.name, customers, len(want))
		}
	}
}

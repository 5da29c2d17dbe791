package main

// `tally all` under a load: the end-to-end, memory and lag runs share this.

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// benchAll is a `tally all` the benchmark started: its embedded broker,
// private ClickHouse (a child process), ingest, aggregator and query.
type benchAll struct {
	*child
	ingest, query, agg, clickhouse string // addresses
	chPID                          int    // the ClickHouse server's pid, or 0
	dataDir                        string
}

// close stops `tally all` and removes its data at once rather than with
// the run's directory at the end: a store of millions of events takes a
// while to delete, which belongs to the phase that made it.
func (a *benchAll) close() {
	a.stop()
	_ = os.RemoveAll(a.dataDir)
}

func startBenchAll(ctx context.Context, exe, dir, name string, partitions int) (*benchAll, error) {
	addrs, err := benchAddrs(6)
	if err != nil {
		return nil, err
	}
	port := func(a string) string { _, p, _ := net.SplitHostPort(a); return p }
	a := &benchAll{ingest: addrs[1], query: addrs[2], agg: addrs[3], clickhouse: addrs[5], dataDir: filepath.Join(dir, name)}
	a.child, err = startChild(ctx, exe, filepath.Join(dir, name+".log"), a.agg, "all",
		"-data-dir="+a.dataDir, "-dev-api-key="+benchKey,
		"-dev.kafka-port="+port(addrs[4]), "-dev.clickhouse-port="+port(addrs[5]),
		"-kafka.partitions="+strconv.Itoa(partitions),
		"-api.listen-addr="+addrs[0], "-ingest.listen-addr="+a.ingest, "-query.listen-addr="+a.query,
		"-aggregator.listen-addr="+a.agg, "-log.level=warn")
	if err != nil {
		return nil, err
	}
	a.chPID = childPID(a.cmd.Process.Pid, "clickhouse")
	return a, nil
}

// benchSample is the state of a run at one moment.
type benchSample struct {
	T         float64 `json:"t_s"`       // seconds since the load started
	Accepted  int     `json:"accepted"`  // events acknowledged so far
	Queryable int     `json:"queryable"` // events whose usage a query returned so far (complete slices only)
	// The aggregator's consumer lag (tally_aggregator_consumer_lag_messages,
	// all partitions): records the embedded broker holds for it.
	BrokerLag   int64   `json:"broker_lag"`
	TallyRSSMiB float64 `json:"tally_all_rss_mib"`
	CHRSSMiB    float64 `json:"clickhouse_rss_mib"`
}

func (a *benchAll) sample(ctx context.Context, since time.Time, cut *benchSlices) benchSample {
	s := benchSample{T: round3(time.Since(since).Seconds()), BrokerLag: a.brokerLag(ctx),
		TallyRSSMiB: procRSSMiB(a.cmd.Process.Pid), CHRSSMiB: procRSSMiB(a.chPID)}
	s.Accepted, s.Queryable = cut.totals()
	return s
}

// brokerLag sums the aggregator's lag gauge over partitions, or -1.
func (a *benchAll) brokerLag(ctx context.Context) int64 {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.agg+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "tally_aggregator_consumer_lag_messages") {
			continue
		}
		if i := strings.LastIndexByte(l, ' '); i > 0 {
			v, _ := strconv.ParseFloat(l[i+1:], 64)
			sum += v
		}
	}
	return int64(sum)
}

// benchLoad is one load on a `tally all`.
type benchLoad struct {
	shape       benchShape
	rate        float64       // events/s offered; 0: as fast as ingest answers
	duration    time.Duration // of sending
	drain       time.Duration // after sending, how long usage may take to become exact
	sampleEvery time.Duration
	pollEvery   time.Duration // usage queries
}

type benchLoadResult struct {
	sent       benchSendResult
	cut        *benchSlices
	samples    []benchSample
	start      time.Time
	allVisible time.Time // when every slice's usage was exact; zero if not within the drain
	pollErr    error     // the last query error, if any
	// verifyErr: the final check (benchSlices.verify) after every slice was
	// exact found a slice whose usage differs, or could not query.
	verifyErr error
}

// run sends the load cut into one-second slices, queries usage until every
// slice is exact (or the drain ends) and samples the process meanwhile; if
// every slice was exact, it checks every slice's usage once more after a
// settle (r.verifyErr).
func (a *benchAll) run(ctx context.Context, l benchLoad, runID string, logger *slog.Logger) (*benchLoadResult, error) {
	lg := benchLoadgen("http://"+a.ingest, "http://"+a.query, l.shape, runID, logger)
	if err := lg.ensureMeter(ctx); err != nil {
		return nil, err
	}
	if l.rate > 0 {
		lg.pace = &pacer{perEvent: time.Duration(float64(time.Second) / l.rate)}
	}
	r := &benchLoadResult{cut: &benchSlices{base: runID, runs: map[string]*benchSlice{}}, start: time.Now()}
	from := r.start.Add(-time.Minute)

	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	pollDone := make(chan error, 1)
	go func() {
		var last error
		for {
			done, err := r.cut.poll(pollCtx, lg, from)
			if err != nil && pollCtx.Err() == nil {
				last = err
			}
			if done {
				pollDone <- nil
				return
			}
			select {
			case <-pollCtx.Done():
				pollDone <- last
				return
			case <-time.After(l.pollEvery):
			}
		}
	}()
	var mu sync.Mutex
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(l.sampleEvery)
		defer t.Stop()
		for {
			s := a.sample(sampleCtx, r.start, r.cut)
			mu.Lock()
			r.samples = append(r.samples, s)
			mu.Unlock()
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
		}
	}()

	r.sent = lg.sendFor(ctx, l.duration, r.cut)
	select {
	case r.pollErr = <-pollDone:
	case <-time.After(l.drain):
		stopPoll()
		r.pollErr = <-pollDone
	}
	if r.cut.allVisible() {
		r.allVisible = r.cut.lastVisible()
		// The final check: after a settle (a late duplicate would land by
		// then), every slice's usage once more, each exactly its expected
		// total.
		select {
		case <-ctx.Done():
		case <-time.After(max(l.pollEvery, time.Second)):
		}
		r.verifyErr = r.cut.verify(ctx, lg, from)
		if r.verifyErr == nil {
			r.verifyErr = r.cut.wrongs() // seen by a poll during the drain
		}
	}
	stopSampling()
	<-sampled
	r.samples = append(r.samples, a.sample(ctx, r.start, r.cut))
	return r, nil
}

// freshness returns the slices with events, whether every one became
// exact, and the sorted delays from each slice's last acknowledgement to
// its usage exact in a query.
func (r *benchLoadResult) freshness() (slicesWithEvents int, exact bool, fresh []time.Duration) {
	r.cut.mu.Lock()
	defer r.cut.mu.Unlock()
	exact = true
	for _, sl := range r.cut.runs {
		if sl.wrong != "" { // served a total after it was exact, events or none
			exact = false
		}
		if sl.accepted == 0 {
			continue
		}
		slicesWithEvents++
		if sl.visible.IsZero() || sl.failed || sl.wrong != "" {
			exact = false
			continue
		}
		fresh = append(fresh, sl.visible.Sub(sl.lastAck))
	}
	if r.verifyErr != nil { // the final check found a difference or could not query
		exact = false
	}
	slices.Sort(fresh)
	return slicesWithEvents, exact, fresh
}

// peak returns the largest value f takes over the samples.
func (r *benchLoadResult) peak(f func(benchSample) float64) float64 {
	var m float64
	for _, s := range r.samples {
		m = max(m, f(s))
	}
	return round3(m)
}

// notExact is why a run is not exact: the final check's difference, or a
// slice not exact within the drain.
func (r *benchLoadResult) notExact(drain time.Duration) error {
	if r.verifyErr != nil {
		return r.verifyErr
	}
	if err := r.cut.wrongs(); err != nil {
		return err
	}
	return fmt.Errorf("usage not exact within %s of the last acknowledgement (last query error: %v)", drain, r.pollErr)
}

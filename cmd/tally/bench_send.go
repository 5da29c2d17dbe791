package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"
)

// loadAvg is the one-minute load average (Linux), or "".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// benchLoadgen is a load generator (loadgen_send.go) for one shape.
func benchLoadgen(ingestURL, queryURL string, sh benchShape, runID string, logger *slog.Logger) *loadgen {
	cfg := loadgenConfig{
		IngestURL: ingestURL, QueryURL: queryURL, APIKey: benchKey,
		Batch: sh.Batch, Concurrency: sh.Conns, Customers: 1000,
		Format: sh.Format, Gzip: sh.Gzip, Meter: "loadgen_tokens", RunID: runID,
	}
	return &loadgen{cfg: cfg, logger: logger.With("component", "bench", "run", runID), client: &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: sh.Conns + 2, IdleConnTimeout: 90 * time.Second, DisableCompression: true,
		},
	}}
}

type benchSendResult struct {
	accepted, failed int
	failedWhy        map[string]int
	perSecond        float64
	p50, p99         time.Duration
	lastAck          time.Time
}

// sendFor posts requests with cfg.Concurrency in flight for d (paced by
// lg.pace if set). slice, if set, names the run of a request from its
// start time and is told each acknowledgement (run, accepted events).
func (lg *loadgen) sendFor(ctx context.Context, d time.Duration, slice *benchSlices) benchSendResult {
	res := benchSendResult{failedWhy: map[string]int{}}
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range lg.cfg.Concurrency {
		wg.Go(func() {
			var buf []byte
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if lg.pace.wait(ctx, lg.cfg.Batch) != nil || !time.Now().Before(deadline) {
					return
				}
				b := int(next.Add(1) - 1)
				cfg := lg.cfg
				if slice != nil {
					cfg.RunID = slice.open(time.Since(start))
				}
				buf = appendEvents(buf[:0], &cfg, b*cfg.Batch, cfg.Batch, time.Now())
				body, err := lg.encodeBody(buf)
				if err != nil {
					return
				}
				r := lg.post(ctx, body, fmt.Sprintf("%s-b%d", cfg.RunID, b))
				mu.Lock()
				if r.err == nil {
					res.accepted += r.accepted
					res.lastAck = time.Now()
				} else {
					res.failed++
					res.failedWhy[r.reason]++
				}
				mu.Unlock()
				if slice != nil {
					slice.acked(cfg.RunID, r.accepted, r.err != nil)
				}
				if r.err != nil {
					lg.logger.Warn("request failed", "err", r.err)
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	if slice != nil {
		slice.close()
	}
	end := res.lastAck
	if end.IsZero() {
		end = time.Now()
	}
	res.perSecond = float64(res.accepted) / end.Sub(start).Seconds()
	lg.mu.Lock()
	lat := slices.Clone(lg.latencies)
	lg.mu.Unlock()
	slices.Sort(lat)
	res.p50, res.p99 = percentile(lat, 0.50), percentile(lat, 0.99)
	lg.client.CloseIdleConnections()
	return res
}

// benchSlices cuts the end-to-end load into one-second slices, each its
// own run (group value), so that each slice's freshness is measured: from
// its last acknowledgement to its usage exact in a query.
type benchSlices struct {
	base string
	mu   sync.Mutex
	runs map[string]*benchSlice
	cur  int
	all  bool // sending ended: every slice is closed
}

type benchSlice struct {
	inFlight, accepted int
	closed, failed     bool
	lastAck, visible   time.Time
}

func (s *benchSlices) name(i int) string { return s.base + "-s" + strconv.Itoa(i) }

func (s *benchSlices) open(since time.Duration) string {
	i := int(since / time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	for ; s.cur < i; s.cur++ { // earlier slices take no new requests
		if sl := s.runs[s.name(s.cur)]; sl != nil { // a stalled second may have none
			sl.closed = true
		}
	}
	n := s.name(i)
	sl := s.runs[n]
	if sl == nil {
		sl = &benchSlice{}
		s.runs[n] = sl
	}
	sl.inFlight++
	return n
}

func (s *benchSlices) acked(run string, accepted int, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := s.runs[run]
	sl.inFlight--
	sl.accepted += accepted
	sl.failed = sl.failed || failed
	sl.lastAck = time.Now()
}

func (s *benchSlices) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sl := range s.runs {
		sl.closed = true
	}
	s.all = true
}

// poll queries usage by run and marks every complete slice whose usage is
// exact as visible; it returns whether every slice is.
func (s *benchSlices) poll(ctx context.Context, lg *loadgen, from time.Time) (bool, error) {
	q := url.Values{}
	q.Set("from", from.UTC().Format(time.RFC3339Nano))
	q.Set("to", time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano))
	q.Add("group_by", loadgenGroupKey)
	u := strings.TrimRight(lg.cfg.QueryURL, "/") + "/api/v1/meters/" + lg.cfg.Meter + "/query?" + q.Encode()
	code, body, err := lg.do(ctx, http.MethodGet, u, "", nil)
	if err != nil {
		return false, err
	}
	if code != http.StatusOK {
		return false, fmt.Errorf("query answered %d: %s", code, bytes.TrimSpace(body))
	}
	now := time.Now()
	var resp struct {
		Data []struct {
			Value   json.Number       `json:"value"`
			GroupBy map[string]string `json:"group_by"`
		} `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&resp); err != nil {
		return false, err
	}
	got := map[string]decimal.Decimal{}
	for _, row := range resp.Data {
		v, err := decimal.NewFromString(row.Value.String())
		if err != nil {
			return false, err
		}
		run := row.GroupBy[loadgenGroupKey]
		got[run] = got[run].Add(v)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	done := s.all
	for run, sl := range s.runs {
		if !sl.visible.IsZero() {
			continue
		}
		if sl.closed && sl.inFlight == 0 && got[run].Equal(decimal.New(int64(sl.accepted), -1)) {
			sl.visible = now
			continue
		}
		done = false
	}
	return done, nil
}

// benchEndToEnd runs `tally all` and a paced load, and measures freshness.
func benchEndToEnd(ctx context.Context, cfg benchConfig, exe, dir string, w io.Writer, logger *slog.Logger) (*benchE2E, error) {
	sh, _ := parseShape(cfg.E2EShape)
	e := &benchE2E{OfferedPerS: cfg.E2ERate, FreshTargetMs: 1000, TargetPerS: 80000}
	api := "127.0.0.1:" + strconv.Itoa(benchFreePort())
	ing := "127.0.0.1:" + strconv.Itoa(benchFreePort())
	qry := "127.0.0.1:" + strconv.Itoa(benchFreePort())
	agg := "127.0.0.1:" + strconv.Itoa(benchFreePort())
	c, err := startChild(ctx, exe, filepath.Join(dir, "all.log"), agg, "all",
		"-data-dir="+filepath.Join(dir, "all"), "-dev-api-key="+benchKey,
		"-dev.kafka-port="+strconv.Itoa(benchFreePort()), "-kafka.partitions="+strconv.Itoa(cfg.Partitions),
		"-api.listen-addr="+api, "-ingest.listen-addr="+ing, "-query.listen-addr="+qry, "-aggregator.listen-addr="+agg,
		"-log.level=warn")
	if err != nil {
		return e, err
	}
	defer c.stop()
	lg := benchLoadgen("http://"+ing, "http://"+qry, sh, "e2e-"+randHex(4), logger)
	lg.cfg.APIKey = benchKey
	if err := lg.ensureMeter(ctx); err != nil {
		return e, err
	}
	lg.pace = &pacer{perEvent: time.Duration(float64(time.Second) / cfg.E2ERate)}
	cut := &benchSlices{base: lg.cfg.RunID, runs: map[string]*benchSlice{}}
	from := time.Now().Add(-time.Minute)

	pollCtx, stopPoll := context.WithCancel(ctx)
	pollDone := make(chan error, 1)
	go func() {
		var last error
		for {
			done, err := cut.poll(pollCtx, lg, from)
			if err != nil {
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
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	res := lg.sendFor(ctx, cfg.E2EDuration, cut)
	e.Events, e.EventsPerS = res.accepted, round3(res.perSecond)
	var pollErr error
	select {
	case pollErr = <-pollDone:
	case <-time.After(2 * time.Minute):
		stopPoll()
		pollErr = <-pollDone
	}
	stopPoll()
	e.PeakRSSMiB, e.PeakRSSTargetMiB = procPeakRSSMiB(c.cmd.Process.Pid), 300
	var fresh []time.Duration
	e.Exact = true
	for _, sl := range cut.runs {
		if sl.accepted == 0 {
			continue
		}
		e.Slices++
		if sl.visible.IsZero() || sl.failed {
			e.Exact = false
			continue
		}
		fresh = append(fresh, sl.visible.Sub(sl.lastAck))
	}
	slices.Sort(fresh)
	e.FreshP50ms, e.FreshP99ms = ms(percentile(fresh, 0.5)), ms(percentile(fresh, 0.99))
	fmt.Fprintf(w, "\nend to end (tally all: embedded broker + private ClickHouse; %s at %.0f events/s offered for %s)\n", sh, cfg.E2ERate, cfg.E2EDuration)
	fmt.Fprintf(w, "%-16s %12.0f events/s (target %.0f), %d one-second slices, exact %v, freshness p50 %.0f ms p99 %.0f ms (target p99 < %.0f ms; polled every 50 ms)\n",
		"http->queryable", e.EventsPerS, e.TargetPerS, e.Slices, e.Exact, e.FreshP50ms, e.FreshP99ms, e.FreshTargetMs)
	fmt.Fprintf(w, "%-16s %.0f MiB (target < %.0f MB at full load; this load is not full)\n", "tally all peak RSS", e.PeakRSSMiB, e.PeakRSSTargetMiB)
	if !e.Exact {
		return e, fmt.Errorf("end-to-end usage not exact within 2 minutes of the last acknowledgement (last query error: %v)", pollErr)
	}
	return e, nil
}

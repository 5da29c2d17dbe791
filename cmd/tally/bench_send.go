package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
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
	// The pacer may hold a request past the deadline (a slow rate, large
	// requests): it waits no longer than sending lasts.
	paceCtx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for range lg.cfg.Concurrency {
		wg.Go(func() {
			var buf []byte
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if lg.pace.wait(paceCtx, lg.cfg.Batch) != nil || !time.Now().Before(deadline) {
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
	base      string
	mu        sync.Mutex
	runs      map[string]*benchSlice
	cur       int
	all       bool // sending ended: every slice is closed
	accepted  int  // events acknowledged, over every slice
	queryable int  // events of the slices whose usage was exact
}

type benchSlice struct {
	inFlight, accepted int
	closed, failed     bool
	lastAck, visible   time.Time
	wrong              string // a usage served after it was exact that differs from accepted x 0.1
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
	s.accepted += accepted
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

// query returns usage by run, summed over the rows of each.
func (s *benchSlices) query(ctx context.Context, lg *loadgen, from time.Time) (map[string]decimal.Decimal, error) {
	q := url.Values{}
	q.Set("from", from.UTC().Format(time.RFC3339Nano))
	q.Set("to", time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano))
	q.Add("group_by", loadgenGroupKey)
	u := strings.TrimRight(lg.cfg.QueryURL, "/") + "/api/v1/meters/" + lg.cfg.Meter + "/query?" + q.Encode()
	code, body, err := lg.do(ctx, http.MethodGet, u, "", nil)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("query answered %d: %s", code, bytes.TrimSpace(body))
	}
	var resp struct {
		Data []struct {
			Value   json.Number       `json:"value"`
			GroupBy map[string]string `json:"group_by"`
		} `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&resp); err != nil {
		return nil, err
	}
	got := map[string]decimal.Decimal{}
	for _, row := range resp.Data {
		v, err := decimal.NewFromString(row.Value.String())
		if err != nil {
			return nil, err
		}
		run := row.GroupBy[loadgenGroupKey]
		got[run] = got[run].Add(v)
	}
	return got, nil
}

// expected is a slice's exact usage: 0.1 per event acknowledged.
func (sl *benchSlice) expected() decimal.Decimal { return decimal.New(int64(sl.accepted), -1) }

// poll queries usage by run and marks every complete slice whose usage is
// exact as visible; it returns whether every slice is. A slice already
// visible whose usage now differs (an event counted twice after it was
// exact) is recorded as wrong, which makes the run not exact.
func (s *benchSlices) poll(ctx context.Context, lg *loadgen, from time.Time) (bool, error) {
	got, err := s.query(ctx, lg, from)
	if err != nil {
		return false, err
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	done := s.all
	for run, sl := range s.runs {
		if !sl.visible.IsZero() {
			s.check(run, sl, got[run])
			continue
		}
		if sl.closed && sl.inFlight == 0 && got[run].Equal(sl.expected()) {
			sl.visible = now
			s.queryable += sl.accepted
			continue
		}
		done = false
	}
	return done, nil
}

// check records a slice's usage that differs from its expected total (the
// first difference seen is kept). s.mu is held.
func (s *benchSlices) check(run string, sl *benchSlice, served decimal.Decimal) {
	if sl.wrong == "" && !served.Equal(sl.expected()) {
		sl.wrong = fmt.Sprintf("slice %s: expected %s, served %s", run, sl.expected(), served)
	}
}

// verify is the final check, once every slice was exact: it queries every
// slice's usage once more and returns an error naming each slice whose
// usage is not its expected total (each is also recorded as wrong, so the
// run is not exact). Exact once is not enough: an event counted a second
// time after its slice first matched would otherwise go unseen.
func (s *benchSlices) verify(ctx context.Context, lg *loadgen, from time.Time) error {
	got, err := s.query(ctx, lg, from)
	if err != nil {
		return fmt.Errorf("final check of usage: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for run, sl := range s.runs {
		s.check(run, sl, got[run])
	}
	return s.wrongErr()
}

// wrongErr names every slice whose usage differed from its expected total
// after it was exact, or is nil. s.mu is held.
func (s *benchSlices) wrongErr() error {
	var w []string
	for _, sl := range s.runs {
		if sl.wrong != "" {
			w = append(w, sl.wrong)
		}
	}
	if len(w) == 0 {
		return nil
	}
	slices.Sort(w)
	return fmt.Errorf("usage not exact at the final check: %s", strings.Join(w, "; "))
}

// wrongs is wrongErr for callers that do not hold s.mu.
func (s *benchSlices) wrongs() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wrongErr()
}

// totals returns the events acknowledged and those whose usage was exact.
func (s *benchSlices) totals() (accepted, queryable int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted, s.queryable
}

// allVisible reports whether sending ended and every slice's usage was
// exact.
func (s *benchSlices) allVisible() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.all {
		return false
	}
	for _, sl := range s.runs {
		if sl.visible.IsZero() {
			return false
		}
	}
	return true
}

// lastVisible is when the last slice's usage became exact.
func (s *benchSlices) lastVisible() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t time.Time
	for _, sl := range s.runs {
		if sl.visible.After(t) {
			t = sl.visible
		}
	}
	return t
}

package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tally-oss/tally/schemas"
)

// loadgen holds what the senders and the verifier share.
type loadgen struct {
	cfg    loadgenConfig
	client *http.Client
	logger *slog.Logger
	pace   *pacer

	mu          sync.Mutex
	latencies   []time.Duration
	consecutive int // failed requests in a row
}

// ensureMeter creates the verification meter; one that exists must have
// the same definition, or its numbers would mean something else.
func (lg *loadgen) ensureMeter(ctx context.Context) error {
	want := schemas.Meter{
		Key: lg.cfg.Meter, Name: "Load generator tokens",
		Description: "created by tally loadgen: 0.1 per event, by run",
		EventType:   loadgenEventType, Aggregation: schemas.AggSum, ValueProperty: loadgenValuePath,
		GroupBy: map[string]string{loadgenGroupKey: loadgenGroupPath},
	}
	body, _ := json.Marshal(want)
	meters := strings.TrimRight(lg.cfg.QueryURL, "/") + "/api/v1/meters"
	code, resp, err := lg.do(ctx, http.MethodPost, meters, "application/json", body)
	switch {
	case err != nil:
		return fmt.Errorf("create meter %s: %w", lg.cfg.Meter, err)
	case code == http.StatusCreated:
		lg.logger.Info("meter created", "meter", lg.cfg.Meter)
		return nil
	case code != http.StatusConflict:
		return fmt.Errorf("create meter %s: %d %s", lg.cfg.Meter, code, bytes.TrimSpace(resp))
	}
	code, resp, err = lg.do(ctx, http.MethodGet, meters+"/"+lg.cfg.Meter, "", nil)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("read existing meter %s: %d %s %v", lg.cfg.Meter, code, bytes.TrimSpace(resp), err)
	}
	var have schemas.Meter
	if err := json.Unmarshal(resp, &have); err != nil {
		return fmt.Errorf("read existing meter %s: %w", lg.cfg.Meter, err)
	}
	if have.EventType != want.EventType || have.Aggregation != want.Aggregation || have.ValueProperty != want.ValueProperty ||
		have.Filter != nil || have.GroupBy[loadgenGroupKey] != loadgenGroupPath {
		return fmt.Errorf("meter %s exists with another definition (%s %s of %s, group_by %v, filter %v); pick another -loadgen.meter",
			have.Key, have.Aggregation, have.ValueProperty, have.EventType, have.GroupBy, have.Filter != nil)
	}
	return nil
}

// do sends one request of the meters or usage API with the API key.
func (lg *loadgen) do(ctx context.Context, method, u, contentType string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+lg.cfg.APIKey)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := lg.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// pacer spaces requests so that events leave at most at the configured
// rate on average: each request reserves the time its events take at that
// rate and starts at the beginning of its slot.
type pacer struct {
	mu       sync.Mutex
	perEvent time.Duration
	next     time.Time
}

func (p *pacer) wait(ctx context.Context, events int) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(time.Duration(events) * p.perEvent)
	p.mu.Unlock()
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// appendEvents appends events first..first+n-1 of the run as a JSON array
// or as NDJSON. Hand-written so that the generator's CPU stays small next
// to the server's on a shared machine; run ids are validated to need no
// escaping.
func appendEvents(buf []byte, cfg *loadgenConfig, first, n int, now time.Time) []byte {
	ts := now.UTC().Format(time.RFC3339Nano)
	if cfg.Format == "json" {
		buf = append(buf, '[')
	}
	for i := first; i < first+n; i++ {
		if i > first && cfg.Format == "json" {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"id":"`...)
		buf = append(buf, cfg.RunID...)
		buf = append(buf, '-')
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, `","type":"`+loadgenEventType+`","customer_id":"loadgen-customer-`...)
		buf = strconv.AppendInt(buf, int64(i%cfg.Customers), 10)
		buf = append(buf, `","time":"`...)
		buf = append(buf, ts...)
		buf = append(buf, `","properties":{"tokens":0.1,"model":"`...)
		buf = append(buf, loadgenModels[i%len(loadgenModels)]...)
		buf = append(buf, `","run_id":"`...)
		buf = append(buf, cfg.RunID...)
		buf = append(buf, `"}}`...)
		if cfg.Format == "ndjson" {
			buf = append(buf, '\n')
		}
	}
	if cfg.Format == "json" {
		buf = append(buf, ']')
	}
	return buf
}

// send posts every event with cfg.Concurrency requests in flight and
// returns when the last one was acknowledged.
func (lg *loadgen) send(ctx context.Context, rep *loadgenReport) (lastAck time.Time, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	batches := (lg.cfg.Events + lg.cfg.Batch - 1) / lg.cfg.Batch
	var next, accepted atomic.Int64
	var mu sync.Mutex // guards rep and lastAck
	var wg sync.WaitGroup
	start := time.Now()
	progressDone := make(chan struct{})
	go lg.logProgress(ctx, progressDone, start, &accepted)
	for range lg.cfg.Concurrency {
		wg.Go(func() {
			var buf []byte
			for {
				b := int(next.Add(1) - 1)
				if b >= batches || ctx.Err() != nil {
					return
				}
				first := b * lg.cfg.Batch
				n := min(lg.cfg.Batch, lg.cfg.Events-first)
				if lg.pace.wait(ctx, n) != nil {
					return
				}
				buf = appendEvents(buf[:0], &lg.cfg, first, n, time.Now())
				body, err := lg.encodeBody(buf)
				if err != nil {
					cancel(err)
					return
				}
				res := lg.post(ctx, body, fmt.Sprintf("%s-b%d", lg.cfg.RunID, b))
				mu.Lock()
				rep.Retries += res.retries
				switch {
				case res.err == nil:
					rep.Requests++
					rep.Accepted += res.accepted
					rep.Rejected += res.rejected
					accepted.Add(int64(res.accepted))
					lastAck = time.Now()
				case ctx.Err() == nil:
					rep.Failed++
					rep.FailedWhy[res.reason]++
					rep.Ambiguous = rep.Ambiguous || res.ambiguous
				}
				mu.Unlock()
				if errors.Is(res.err, errUnauthorized) {
					cancel(res.err)
				} else if res.err != nil && lg.failedInRow(true) >= loadgenMaxConsecutiveFailures {
					cancel(fmt.Errorf("%d requests in a row failed, the last with: %w", loadgenMaxConsecutiveFailures, res.err))
				} else if res.err == nil {
					lg.failedInRow(false)
				}
			}
		})
	}
	wg.Wait()
	close(progressDone)
	if lastAck.IsZero() {
		lastAck = time.Now()
	}
	rep.Elapsed = lastAck.Sub(start)
	if rep.Elapsed > 0 {
		rep.PerSecond = float64(rep.Accepted) / rep.Elapsed.Seconds()
	}
	lg.mu.Lock()
	rep.setLatencies(lg.latencies)
	lg.mu.Unlock()
	if err := context.Cause(ctx); err != nil {
		return lastAck, fmt.Errorf("sending stopped: %w", err)
	}
	return lastAck, nil
}

// failedInRow counts consecutive failed requests (failed true) or resets
// the count, and returns it.
func (lg *loadgen) failedInRow(failed bool) int {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	if failed {
		lg.consecutive++
	} else {
		lg.consecutive = 0
	}
	return lg.consecutive
}

func (lg *loadgen) logProgress(ctx context.Context, done <-chan struct{}, start time.Time, accepted *atomic.Int64) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
			n := accepted.Load()
			lg.logger.Info("sending", "accepted", n, "of", lg.cfg.Events,
				"events_per_second", int(float64(n)/time.Since(start).Seconds()))
		}
	}
}

// encodeBody gzips the body when asked; otherwise it copies it, because
// the worker reuses its buffer and a retry resends the same bytes.
func (lg *loadgen) encodeBody(raw []byte) ([]byte, error) {
	if !lg.cfg.Gzip {
		return slices.Clone(raw), nil
	}
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// postResult is the outcome of one batch, retries included.
type postResult struct {
	accepted, rejected, retries int
	err                         error
	reason                      string // why it failed, for the report
	ambiguous                   bool   // it may have been written even so
}

// post sends one batch, retrying 503 (Kafka did not acknowledge) with
// backoff. Resending the same body is safe: events are identified by id
// and the first accepted version wins.
func (lg *loadgen) post(ctx context.Context, body []byte, idempotencyKey string) postResult {
	var res postResult
	u := strings.TrimRight(lg.cfg.IngestURL, "/") + "/api/v1/events"
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			return postResult{err: err, reason: "request"}
		}
		req.Header.Set("Authorization", "Bearer "+lg.cfg.APIKey)
		req.Header.Set("Content-Type", map[string]string{"json": "application/json", "ndjson": "application/x-ndjson"}[lg.cfg.Format])
		if lg.cfg.Gzip {
			req.Header.Set("Content-Encoding", "gzip")
		}
		// Marks the POST as safe to replay, so net/http resends it itself
		// when a kept-alive connection turns out to be closed.
		req.Header.Set("Idempotency-Key", idempotencyKey)
		start := time.Now()
		resp, err := lg.client.Do(req)
		if err != nil {
			res.err, res.reason, res.ambiguous = err, "transport", true
			return res
		}
		respBody, readErr := io.ReadAll(resp.Body)
		resp.Body.Close()
		lg.mu.Lock()
		lg.latencies = append(lg.latencies, time.Since(start))
		lg.mu.Unlock()
		switch {
		case resp.StatusCode == http.StatusAccepted && readErr == nil:
			var ack struct {
				Accepted int               `json:"accepted"`
				Rejected []json.RawMessage `json:"rejected"`
			}
			if err := json.Unmarshal(respBody, &ack); err != nil {
				res.err, res.reason = fmt.Errorf("202 with an unreadable body: %w", err), "bad 202 body"
				return res
			}
			res.accepted, res.rejected = ack.Accepted, len(ack.Rejected)
			if len(ack.Rejected) > 0 {
				lg.logger.Warn("events rejected", "count", len(ack.Rejected), "first", string(ack.Rejected[0]))
			}
			return res
		case resp.StatusCode == http.StatusUnauthorized:
			res.err, res.reason = errUnauthorized, "401"
			return res
		case resp.StatusCode == http.StatusServiceUnavailable && attempt < loadgenMaxAttempts:
			res.retries++
			wait := backoff
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && time.Duration(s)*time.Second > wait {
				wait = time.Duration(s) * time.Second
			}
			backoff = min(2*backoff, 5*time.Second)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				res.err, res.reason, res.ambiguous = ctx.Err(), "canceled", true
				return res
			}
		default:
			res.err = fmt.Errorf("ingest answered %d: %s", resp.StatusCode, bytes.TrimSpace(respBody))
			res.reason = strconv.Itoa(resp.StatusCode)
			res.ambiguous = resp.StatusCode >= 500 || readErr != nil
			lg.logger.Warn("request failed", "status", resp.StatusCode, "body", string(bytes.TrimSpace(respBody)))
			return res
		}
	}
}

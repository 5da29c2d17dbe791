package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// BatcherConfig bounds the requests of a Batcher.
type BatcherConfig struct {
	// MaxEvents per request (default 1000, at most ingest's limit, see
	// WithRequestLimits).
	MaxEvents int
	// MaxBytes of JSON per request before gzip (default 1 MiB, at most
	// ingest's limit). An event larger than this goes alone.
	MaxBytes int
	// Linger is how long a partial batch waits for more events (default
	// 200 ms).
	Linger time.Duration
	// Concurrency is the number of requests in flight at once (default 2).
	Concurrency int
	// OnResult, when set, is called after each request from the goroutine
	// that sent it (so from up to Concurrency goroutines at once): with the
	// ids of its events, ingest's answer and the error of a request that
	// failed (after retries). It must not call the Batcher's Add, Flush or
	// Close: they wait for the request it is reporting (a deadlock).
	OnResult func(BatchResult)
}

// BatchResult is the outcome of one request of a Batcher.
type BatchResult struct {
	IDs []string // the ids of the request's events, in order
	SendResult
	Err error
}

// BatcherStats counts what a Batcher has done so far.
type BatcherStats struct {
	Events   int64 // events sent (whatever the answer)
	Accepted int64
	Rejected int64
	Failed   int64 // events of requests that failed, but those the answer rejected
	Requests int64
	Retries  int64 // attempts beyond the first
}

// Batcher gathers events into requests and sends them in the background.
// Add, Flush and Close are safe for concurrent use.
type Batcher struct {
	c   *Client
	cfg BatcherConfig
	ctx context.Context

	in      chan batchItem
	flushes chan chan struct{}
	batches chan pending
	closed  chan struct{}
	done    chan struct{}
	once    sync.Once
	workers sync.WaitGroup

	mu    sync.Mutex
	stats BatcherStats
	errs  []error // failures since the last Flush
}

type batchItem struct {
	id   string
	json []byte
}

// pending is a batch on its way; wg counts it until its answer is in.
type pending struct {
	items []batchItem
	wg    *sync.WaitGroup
}

// NewBatcher starts a Batcher sending through c. Its requests and their
// retries run under ctx: when it ends, retrying stops and what is left
// fails. Close the Batcher to send what is left and stop its goroutines.
func (c *Client) NewBatcher(ctx context.Context, cfg BatcherConfig) *Batcher {
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = 1000
	}
	cfg.MaxEvents = min(cfg.MaxEvents, c.maxEvents)
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 1 << 20
	}
	cfg.MaxBytes = min(cfg.MaxBytes, c.maxBytes)
	if cfg.Linger <= 0 {
		cfg.Linger = 200 * time.Millisecond
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 2
	}
	b := &Batcher{
		c: c, cfg: cfg, ctx: ctx,
		in:      make(chan batchItem),
		flushes: make(chan chan struct{}),
		batches: make(chan pending),
		closed:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	for range cfg.Concurrency {
		b.workers.Add(1)
		go b.work()
	}
	go b.gather()
	return b
}

// ErrClosed is Add after Close.
var ErrClosed = errors.New("tally: batcher closed")

// Add queues ev, giving it an id first when it has none, and returns that
// id. It blocks while the requests in flight are at Concurrency and the
// next batch is full (back-pressure), until ctx ends.
func (b *Batcher) Add(ctx context.Context, ev Event) (string, error) {
	id, enc, err := encodeEvent(ev)
	if err != nil {
		return "", fmt.Errorf("tally: encode event: %w", err)
	}
	return b.enqueue(ctx, id, enc)
}

// enqueue hands one encoded event to the gathering goroutine (Add and
// AddJSON) and returns its id.
func (b *Batcher) enqueue(ctx context.Context, id string, enc []byte) (string, error) {
	select {
	case b.in <- batchItem{id: id, json: enc}:
		return id, nil
	case <-b.closed:
		return "", ErrClosed
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Flush sends the events added so far and waits for their answers. It
// returns the failures of requests finished since the last Flush (at
// most the first ten, joined), not the rejections: see OnResult and Stats.
func (b *Batcher) Flush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case b.flushes <- ack:
	case <-b.closed:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
	case <-ctx.Done():
		return ctx.Err()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	err := errors.Join(b.errs...)
	b.errs = nil
	return err
}

// Close flushes, waits for every request and stops the Batcher. Waiting
// ends early when ctx does; requests in flight then go on in the
// background until their retries end.
func (b *Batcher) Close(ctx context.Context) error {
	err := b.Flush(ctx)
	b.once.Do(func() { close(b.closed) })
	if errors.Is(err, ErrClosed) {
		err = nil
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		return errors.Join(err, ctx.Err())
	}
	return err
}

// Stats returns the counts so far.
func (b *Batcher) Stats() BatcherStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// gather collects events into batches and hands them to the workers.
func (b *Batcher) gather() {
	defer close(b.done)
	defer b.workers.Wait()
	defer close(b.batches)
	var (
		items    []batchItem
		size     = 2
		timer    = time.NewTimer(time.Hour)
		inflight sync.WaitGroup // batches handed out and not yet answered
	)
	timer.Stop()
	dispatch := func() {
		timer.Stop()
		if len(items) == 0 {
			return
		}
		inflight.Add(1)
		b.batches <- pending{items: items, wg: &inflight}
		items, size = nil, 2
	}
	for {
		select {
		case it := <-b.in:
			if len(items) > 0 && size+1+len(it.json) > b.cfg.MaxBytes {
				dispatch()
			}
			if len(items) == 0 {
				timer.Reset(b.cfg.Linger)
			}
			items = append(items, it)
			size += 1 + len(it.json)
			if len(items) >= b.cfg.MaxEvents || size >= b.cfg.MaxBytes {
				dispatch()
			}
		case <-timer.C:
			dispatch()
		case ack := <-b.flushes:
			dispatch()
			inflight.Wait()
			close(ack)
		case <-b.closed:
			dispatch()
			inflight.Wait()
			return
		}
	}
}

// work sends batches until there are none.
func (b *Batcher) work() {
	defer b.workers.Done()
	for p := range b.batches {
		encoded := make([][]byte, len(p.items))
		ids := make([]string, len(p.items))
		for i, it := range p.items {
			encoded[i], ids[i] = it.json, it.id
		}
		// The request runs under the Batcher's context, not an Add's:
		// Close waits for it.
		res, err := b.c.sendEncoded(b.ctx, encoded)
		b.record(len(ids), res, err)
		if b.cfg.OnResult != nil {
			b.cfg.OnResult(BatchResult{IDs: ids, SendResult: res, Err: err})
		}
		p.wg.Done()
	}
}

func (b *Batcher) record(events int, res SendResult, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stats.Requests++
	b.stats.Events += int64(events)
	b.stats.Retries += int64(max(res.Attempts-1, 0))
	if err != nil {
		// Events the failed request's answer rejected are rejected.
		b.stats.Failed += int64(events - len(res.Rejected))
		b.stats.Rejected += int64(len(res.Rejected))
		if len(b.errs) < 10 {
			b.errs = append(b.errs, err)
		}
		return
	}
	b.stats.Accepted += int64(res.Accepted)
	b.stats.Rejected += int64(len(res.Rejected))
}

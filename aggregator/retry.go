package aggregator

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/tally-oss/tally/schemas"
)

// Retries wrap the interfaces rather than the call sites: a Store with
// backoff is still a Store, so the batch code reads as if nothing failed.
// They retry until the operation succeeds or ctx is done, and never give
// up on their own: the batch's offset is committed only after every write
// succeeded, so waiting is always safe, and readiness reports the stall.

// retrier runs an operation with exponential backoff.
type retrier struct {
	initial, max time.Duration
	logger       *slog.Logger
}

func (r retrier) do(ctx context.Context, what string, counted func(), op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = r.initial
	b.MaxInterval = r.max
	b.MaxElapsedTime = 0 // forever: losing the Kafka position is never an option
	attempt := 0
	return backoff.RetryNotify(op, backoff.WithContext(b, ctx), func(err error, wait time.Duration) {
		attempt++
		counted()
		r.logger.Warn("retrying", "operation", what, "attempt", attempt, "wait", wait.Round(time.Millisecond), "err", err)
	})
}

// retryingStore is a Store whose calls are retried.
type retryingStore struct {
	next    Store
	retry   retrier
	metrics *metrics
}

var _ Store = (*retryingStore)(nil)

func (s *retryingStore) StoredVersions(ctx context.Context, keys []EventKey) (map[EventKey][]Position, error) {
	var out map[EventKey][]Position
	err := s.retry.do(ctx, opLookupEvents, s.countOther(opLookupEvents), func() error {
		var err error
		out, err = s.next.StoredVersions(ctx, keys)
		return err
	})
	return out, err
}

func (s *retryingStore) InsertEvents(ctx context.Context, rows []EventRow) error {
	return s.retry.do(ctx, "insert_"+tableEvents, s.countInsert(tableEvents), func() error {
		return s.next.InsertEvents(ctx, rows)
	})
}

func (s *retryingStore) InsertReadings(ctx context.Context, rows []ReadingRow) error {
	return s.retry.do(ctx, "insert_"+tableReadings, s.countInsert(tableReadings), func() error {
		return s.next.InsertReadings(ctx, rows)
	})
}

func (s *retryingStore) InsertDeadLetters(ctx context.Context, rows []DeadLetterRow) error {
	return s.retry.do(ctx, "insert_"+tableDeadLetters, s.countInsert(tableDeadLetters), func() error {
		return s.next.InsertDeadLetters(ctx, rows)
	})
}

func (s *retryingStore) countInsert(table string) func() {
	c := s.metrics.insertRetries.WithLabelValues(table)
	return c.Inc
}

func (s *retryingStore) countOther(op string) func() {
	c := s.metrics.otherRetries.WithLabelValues(op)
	return c.Inc
}

// retryingMeters is a MeterSource whose loads are retried.
type retryingMeters struct {
	next    MeterSource
	retry   retrier
	metrics *metrics

	mu       sync.Mutex
	warnedAt time.Time
}

var _ MeterSource = (*retryingMeters)(nil)

// ListAll retries failed loads. A load that returns meters and an error
// (meterstore: some stored definitions no longer validate) is used as it
// is: one broken meter must not stop every organization's metering.
func (m *retryingMeters) ListAll(ctx context.Context) (map[string][]schemas.Meter, error) {
	var out map[string][]schemas.Meter
	err := m.retry.do(ctx, opLoadMeters, m.metrics.otherRetries.WithLabelValues(opLoadMeters).Inc, func() error {
		var err error
		out, err = m.next.ListAll(ctx)
		if err != nil && out != nil {
			m.warnPartial(err)
			return nil
		}
		return err
	})
	return out, err
}

// warnPartial logs a partial load at most once a minute: it recurs for
// every batch until the meter is fixed.
func (m *retryingMeters) warnPartial(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if time.Since(m.warnedAt) < time.Minute {
		return
	}
	m.warnedAt = time.Now()
	m.retry.logger.Warn("some meters cannot be used and are skipped", "err", err)
}

// retryingPublisher is a DeadLetterPublisher whose publishes are retried.
type retryingPublisher struct {
	next    DeadLetterPublisher
	retry   retrier
	metrics *metrics
}

var _ DeadLetterPublisher = (*retryingPublisher)(nil)

func (p *retryingPublisher) PublishDeadLetters(ctx context.Context, rows []DeadLetterRow) error {
	if len(rows) == 0 {
		return nil
	}
	return p.retry.do(ctx, opPublishDeadLetters, p.metrics.otherRetries.WithLabelValues(opPublishDeadLetters).Inc, func() error {
		return p.next.PublishDeadLetters(ctx, rows)
	})
}

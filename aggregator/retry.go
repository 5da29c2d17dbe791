package aggregator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/schemas"
)

// Retries wrap the interfaces rather than the call sites: a Store with
// backoff is still a Store, so the batch code reads as if nothing failed.
// A transient failure (ClickHouse or Kafka unreachable, busy, timing out)
// is retried until the operation succeeds or ctx is done: the batch's
// offset is committed only after every write succeeded, so waiting is
// always safe, and readiness reports the stall.
//
// # Parking
//
// A failure that retrying cannot fix, because it is about the rows
// themselves (chclient.IsDataError for ClickHouse, unpublishable for the
// dead-letter topic), would stall the partition forever. Such a write is
// tried dataErrorAttempts times; then it is split in halves written
// separately, down to single rows, so that every other row is written,
// and the single rows that still fail are parked: set aside with a reason
// and counted in tally_aggregator_parked_records_total{reason}, and the
// batch goes on to commit.
//
//   - an event or reading row: the insert returns a *ParkedError naming
//     it, and the batch dead-letters its event as schemas.ReasonUnwritable
//     (a parked event is not stored, so it is not metered either);
//   - a dead-letter row (insert or publish): a shortened copy (message cut
//     to schemas.MaxQuotedValue, no record) is written in its place, and
//     when even that fails, the dead letter is logged at error level and
//     counted as dead_letter_logged_only.
//
// Splitting costs at most 2 x log2(rows) extra writes per parked row.

// retrier runs an operation with exponential backoff.
type retrier struct {
	initial, max time.Duration
	logger       *slog.Logger
}

// dataErrorAttempts is how often a write that fails for a reason about
// its rows is tried before the rows are split and the failing ones parked.
const dataErrorAttempts = 3

// ParkedError is returned by a retrying Store's insert of events or
// readings when some rows could not be written for a reason retrying
// cannot fix: every other row was written. The batch dead-letters them.
type ParkedError struct {
	Rows []int // indexes into the rows passed, ascending
	Err  error // why the first of them failed
}

func (e *ParkedError) Error() string {
	return fmt.Sprintf("%d rows cannot be written: %v", len(e.Rows), e.Err)
}

func (e *ParkedError) Unwrap() error { return e.Err }

// writeOrPark writes rows [0, n) with write(lo, hi), retrying transient
// failures forever. A failure for which permanent is true is tried
// dataErrorAttempts times, then the range is split in halves (each tried
// once more), down to single rows. It returns the single rows that fail
// that way (nil when all were written), or ctx's error.
func (r retrier) writeOrPark(ctx context.Context, what string, counted func(), n int,
	permanent func(error) bool, write func(lo, hi int) error) (*ParkedError, error) {
	var parked *ParkedError
	var split func(lo, hi, attempts int) error
	split = func(lo, hi, attempts int) error {
		failures := 0
		var cause error
		err := r.do(ctx, what, counted, func() error {
			err := write(lo, hi)
			if err != nil && permanent(err) {
				if failures++; failures >= attempts {
					cause = err
					return backoff.Permanent(err)
				}
			}
			return err
		})
		if cause == nil {
			return err // nil, or ctx is done
		}
		if hi-lo == 1 {
			if parked == nil {
				parked = &ParkedError{Err: cause}
			}
			parked.Rows = append(parked.Rows, lo)
			r.logger.Warn("parking a row that cannot be written", "operation", what, "err", cause)
			return nil
		}
		mid := lo + (hi-lo)/2
		if err := split(lo, mid, 1); err != nil {
			return err
		}
		return split(mid, hi, 1)
	}
	if n == 0 {
		return nil, nil
	}
	if err := split(0, n, dataErrorAttempts); err != nil {
		return nil, err
	}
	return parked, nil
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

// InsertEvents returns a *ParkedError for rows that cannot be written.
func (s *retryingStore) InsertEvents(ctx context.Context, rows []EventRow) error {
	return s.insertOrPark(ctx, tableEvents, parkedEvent, len(rows), func(lo, hi int) error {
		return s.next.InsertEvents(ctx, rows[lo:hi])
	})
}

// InsertReadings returns a *ParkedError for rows that cannot be written.
func (s *retryingStore) InsertReadings(ctx context.Context, rows []ReadingRow) error {
	return s.insertOrPark(ctx, tableReadings, parkedReading, len(rows), func(lo, hi int) error {
		return s.next.InsertReadings(ctx, rows[lo:hi])
	})
}

// InsertDeadLetters writes a shortened copy of a row that cannot be
// written, and logs the row if even that fails; it returns only ctx's
// error.
func (s *retryingStore) InsertDeadLetters(ctx context.Context, rows []DeadLetterRow) error {
	err := s.insertOrPark(ctx, tableDeadLetters, parkedDeadLetter, len(rows), func(lo, hi int) error {
		return s.next.InsertDeadLetters(ctx, rows[lo:hi])
	})
	var parked *ParkedError
	if !errors.As(err, &parked) {
		return err
	}
	stubs := make([]DeadLetterRow, len(parked.Rows))
	for i, j := range parked.Rows {
		stubs[i] = shortenedDeadLetter(rows[j], "it could not be stored", parked.Err)
	}
	lost, err := s.retry.writeOrPark(ctx, "insert_"+tableDeadLetters, s.countInsert(tableDeadLetters), len(stubs),
		chclient.IsDataError, func(lo, hi int) error { return s.next.InsertDeadLetters(ctx, stubs[lo:hi]) })
	if err != nil || lost == nil {
		return err
	}
	for _, j := range lost.Rows {
		logLostDeadLetter(s.retry.logger, s.metrics, "store", stubs[j], lost.Err)
	}
	return nil
}

// insertOrPark writes with write(lo, hi), parking the rows whose failure
// is about their data (chclient.IsDataError).
func (s *retryingStore) insertOrPark(ctx context.Context, table, reason string, n int, write func(lo, hi int) error) error {
	parked, err := s.retry.writeOrPark(ctx, "insert_"+table, s.countInsert(table), n, chclient.IsDataError, write)
	if err != nil {
		return err
	}
	if parked == nil {
		return nil
	}
	s.metrics.parked.WithLabelValues(reason).Add(float64(len(parked.Rows)))
	return parked
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
// is: one broken meter must not stop every organization's metering. The
// valid meters are returned with the *meterstore.InvalidMetersError, so
// that the batch dead-letters the broken meters' events (meter_invalid)
// and the backfiller recomputes them once the meters validate again; the
// tally_aggregator_invalid_meters gauge counts the broken meters.
func (m *retryingMeters) ListAll(ctx context.Context) (map[string][]schemas.Meter, error) {
	var out map[string][]schemas.Meter
	var partial error
	err := m.retry.do(ctx, opLoadMeters, m.metrics.otherRetries.WithLabelValues(opLoadMeters).Inc, func() error {
		var err error
		out, err = m.next.ListAll(ctx)
		partial = nil
		if err != nil && out != nil {
			partial = err
			m.warnPartial(err)
			return nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	var invalid *meterstore.InvalidMetersError
	switch {
	case errors.As(partial, &invalid):
		m.metrics.invalidMeters.Set(float64(len(invalid.Meters)))
		return out, invalid
	case partial != nil:
		m.metrics.invalidMeters.Set(1) // at least one, not named: only the log says which
	default:
		m.metrics.invalidMeters.Set(0)
	}
	return out, nil
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
	m.retry.logger.Warn("some stored meters no longer validate: their events are dead-lettered as meter_invalid "+
		"and recomputed once the meters validate again or are replaced", "err", err)
}

// retryingPublisher is a DeadLetterPublisher whose publishes are retried.
type retryingPublisher struct {
	next    DeadLetterPublisher
	retry   retrier
	metrics *metrics
}

var _ DeadLetterPublisher = (*retryingPublisher)(nil)

// PublishDeadLetters publishes a shortened copy of a dead letter that the
// topic refuses (unpublishable), and logs it if the topic refuses that
// too; it returns only ctx's error.
func (p *retryingPublisher) PublishDeadLetters(ctx context.Context, rows []DeadLetterRow) error {
	counted := p.metrics.otherRetries.WithLabelValues(opPublishDeadLetters).Inc
	parked, err := p.retry.writeOrPark(ctx, opPublishDeadLetters, counted, len(rows), unpublishable,
		func(lo, hi int) error { return p.next.PublishDeadLetters(ctx, rows[lo:hi]) })
	if err != nil || parked == nil {
		return err
	}
	p.metrics.parked.WithLabelValues(parkedUnpublished).Add(float64(len(parked.Rows)))
	stubs := make([]DeadLetterRow, len(parked.Rows))
	for i, j := range parked.Rows {
		stubs[i] = shortenedDeadLetter(rows[j], "the dead-letter topic refused it", parked.Err)
	}
	lost, err := p.retry.writeOrPark(ctx, opPublishDeadLetters, counted, len(stubs), unpublishable,
		func(lo, hi int) error { return p.next.PublishDeadLetters(ctx, stubs[lo:hi]) })
	if err != nil || lost == nil {
		return err
	}
	for _, j := range lost.Rows {
		logLostDeadLetter(p.retry.logger, p.metrics, "topic", stubs[j], lost.Err)
	}
	return nil
}

// shortenedDeadLetter is what is written in place of a dead letter that
// cannot be written whole: the same identity and reason, the message cut
// to schemas.MaxQuotedValue and saying why, and no record (the events
// table holds the event, unless it was parked too).
func shortenedDeadLetter(r DeadLetterRow, why string, cause error) DeadLetterRow {
	r.Message = schemas.QuoteValue(r.Message) + " [shortened, without the record: " + why + ": " +
		schemas.QuoteValue(cause.Error()) + "]"
	r.Payload, r.Key = nil, nil
	return r.bounded()
}

// logLostDeadLetter is the last resort for a dead letter that cannot be
// written even shortened: the log holds it.
func logLostDeadLetter(logger *slog.Logger, m *metrics, where string, r DeadLetterRow, cause error) {
	m.parked.WithLabelValues(parkedLoggedOnly).Inc()
	logger.Error("dead letter cannot be written, only this log holds it", "where", where,
		"org_id", r.OrgID, "customer_id", r.CustomerID, "event_id", r.EventID, "meter", r.MeterKey,
		"reason", r.Reason, "message", r.Message, "partition", r.Partition, "offset", r.Offset, "err", cause)
}

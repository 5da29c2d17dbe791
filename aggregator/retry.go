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
//     it, and the batch dead-letters it as schemas.ReasonUnwritable (a
//     parked event is not stored, so it is not metered either, and a
//     re-send of it is a new first version; a parked reading's revision
//     is backfilled again at the next start, backfill.go);
//   - a dead-letter row (insert or publish): a shortened copy (message cut
//     to schemas.MaxQuotedValue, no record) is written in its place, and
//     when even that fails, the dead letter is logged at error level and
//     counted as dead_letter_logged_only.
//
// # Only rows are parked, never the table
//
// The kind of an error does not say whether it is about a row or about
// the table: a column whose type no longer matches (a rolling upgrade, an
// operator's ALTER) refuses every row with the same conversion error that
// one bad value gets. Parking then would dead-letter, or worse commit
// unmetered, the whole stream. So a row is parked only once the table (or
// topic) is shown to take rows at that moment, by one of:
//
//   - another part of the same write was written, or
//   - a canary was: a row known to be writable, written again. For events
//     and readings it is the last row this process wrote to the table
//     (identical, so it folds into itself and changes nothing; its values
//     are real, so a narrowed type that refuses real values refuses it
//     too); before the first, and always for dead letters (whose rows an
//     older copy could replace), a fixed row of the reserved organization
//     canaryOrg, which no API key can name (httpapi.OrgIDPattern), so no
//     query sees it. For the topic it is the last dead letter published
//     (the topic is at least once; consumers deduplicate); none is known
//     before the first publish, and then nothing is parked.
//
// On a cluster (the table is Distributed over shards, canary.go) a shard
// can refuse rows that the others take (an ALTER that ran on some shards
// only, a shard on another ClickHouse version), with a data error, while
// a row written, of the write or the canary, may have gone to another
// shard. There another part written proves nothing, and the canary is
// the last row written together with a fixed row of canaryOrg for each
// shard, whose customer id the table's sharding key sends there, in one
// insert that fails when any shard refuses its row.
//
// When the first single row that fails finds neither, the write is
// systemic: nothing of it was written, nothing is parked, and the whole
// write is retried with backoff, forever, like an outage. It is counted
// in tally_aggregator_systemic_write_failures_total{operation} and logged
// at error level each round, and the partition makes no progress, which
// readiness and tally_aggregator_stalled_partitions report. Fixing the
// table lets the same batch through, with nothing lost.
//
// Splitting costs at most 2 x log2(rows) extra writes per parked row, and
// a systemic round log2(rows) + 1 writes beyond the whole write's tries.
//
// A 1-row write whose row is poison is parked once the canary is written:
// one bad record never stops a partition while the table takes rows. What
// is not told apart: a change that refuses only some real values (a type
// narrowed below values the last written row did not reach) parks the
// rows that no longer fit, each dead-lettered and counted; on a cluster
// the last written row is on one shard, and the other shards' canaries
// have fixed values, so a shard that refuses only some real values is
// not told apart either. (18.16 refuses a Distributed insert whose shard
// has another column type with code 171 for every shard, which is not a
// data error and is retried anyway.)

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
	// Causes[k] is why Rows[k] failed. A batch holds the rows of many
	// organizations, and a data error may quote the row's values: each
	// row's dead letter must say its own error, never another row's.
	Causes []error
}

// Cause is why Rows[k] failed (Err when that is not known).
func (e *ParkedError) Cause(k int) error {
	if k < len(e.Causes) && e.Causes[k] != nil {
		return e.Causes[k]
	}
	return e.Err
}

func (e *ParkedError) Error() string {
	return fmt.Sprintf("%d rows cannot be written: %v", len(e.Rows), e.Err)
}

func (e *ParkedError) Unwrap() error { return e.Err }

// SystemicError is a write that failed for every row it tried, with an
// error about rows, while a canary failed too, or none was known: the
// table or topic refuses rows, not these rows. It is retried, never
// parked.
type SystemicError struct {
	Op     string
	Err    error // the rows' failure
	Canary error // the canary's failure (errNoCanary: none known)
}

func (e *SystemicError) Error() string {
	return fmt.Sprintf("%s refuses every row tried and a row known to be writable as well, so the fault is not in these rows "+
		"(a changed table or topic?); nothing is parked, retrying until it is fixed: %v (canary: %v)", e.Op, e.Err, e.Canary)
}

func (e *SystemicError) Unwrap() error { return e.Err }

// errNoCanary: no row is known to be writable.
var errNoCanary = errors.New("no row known to be writable yet")

// canaryOrg is the organization of the fixed canary rows: it cannot match
// httpapi.OrgIDPattern, so no API key reaches it and no query reads it.
const canaryOrg = "_tally_canary"

// parking says how writeOrPark tells rows apart from their table.
type parking struct {
	what      string
	counted   func()           // a retry
	permanent func(error) bool // the error is about the rows written
	// canary writes a row known to be writable; nil means that parking
	// needs no proof (the rows are replaced by copies without their
	// payload, which are themselves parked only with proof). On a
	// sharded table it writes one on every shard.
	canary func() error
	// sharded tells that the rows of one write may go to different
	// shards, so that a part written proves only its own shards; only
	// the canary proves the table then. nil: never.
	sharded  func() bool
	systemic func() // a round that found the failure systemic
}

// writeOrPark writes rows [0, n) with write(lo, hi), retrying transient
// failures forever. A failure for which p.permanent is true is tried
// dataErrorAttempts times, then the range is split in halves (each tried
// once more), down to single rows. It returns the single rows that fail
// that way (nil when all were written), or ctx's error. A single row is
// parked only when the table is shown to take rows (see "Only rows are
// parked, never the table"); otherwise the whole write is retried.
func (r retrier) writeOrPark(ctx context.Context, p parking, n int, write func(lo, hi int) error) (*ParkedError, error) {
	if n == 0 {
		return nil, nil
	}
	var parked *ParkedError
	err := r.do(ctx, p.what, p.counted, func() error {
		parked = nil
		probed := p.canary == nil // the canary was written (or needs not be)
		written := false          // a part of the write was
		var split func(lo, hi, attempts int) error
		split = func(lo, hi, attempts int) error {
			failures := 0
			var cause error
			err := r.do(ctx, p.what, p.counted, func() error {
				err := write(lo, hi)
				if err != nil && p.permanent(err) {
					if failures++; failures >= attempts {
						cause = err
						return backoff.Permanent(err)
					}
				}
				return err
			})
			if cause == nil {
				if err == nil {
					written = true // the table took rows (on their shards)
				}
				return err // nil, or ctx is done
			}
			if hi-lo == 1 {
				if !probed && (!written || (p.sharded != nil && p.sharded())) {
					if err := r.probe(ctx, p, cause); err != nil {
						return err
					}
					probed = true
				}
				if parked == nil {
					parked = &ParkedError{Err: cause}
				}
				parked.Rows = append(parked.Rows, lo)
				parked.Causes = append(parked.Causes, cause)
				r.logger.Warn("parking a row that cannot be written", "operation", p.what, "err", cause)
				return nil
			}
			mid := lo + (hi-lo)/2
			if err := split(lo, mid, 1); err != nil {
				return err
			}
			return split(mid, hi, 1)
		}
		err := split(0, n, dataErrorAttempts)
		var systemic *SystemicError
		switch {
		case errors.As(err, &systemic):
			if p.systemic != nil {
				p.systemic()
			}
			r.logger.Error("a write fails for every row, and for a row known to be writable too: not parking, retrying",
				"operation", p.what, "err", err)
			return err // retried: nothing of it was written
		case err != nil:
			return backoff.Permanent(err) // ctx is done
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return parked, nil
}

// probe writes the canary. It returns nil once it was written, a
// *SystemicError when it is refused as well (or none is known), or ctx's
// error; a transient failure of the canary is retried.
func (r retrier) probe(ctx context.Context, p parking, cause error) error {
	var refused error
	err := r.do(ctx, p.what+"_canary", p.counted, func() error {
		err := p.canary()
		if err != nil && (errors.Is(err, errNoCanary) || p.permanent(err)) {
			refused = err
			return backoff.Permanent(err)
		}
		return err
	})
	if refused != nil {
		return &SystemicError{Op: p.what, Err: cause, Canary: refused}
	}
	return err
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

	// The last event and reading this process wrote: the canaries of
	// their tables (see "Only rows are parked, never the table").
	lastEvent   lastWritten[EventRow]
	lastReading lastWritten[ReadingRow]
	// The customers of canaryOrg that put a canary on each shard of a
	// sharded table (canary.go).
	shards shardCanaries
}

var _ Store = (*retryingStore)(nil)

// lastWritten holds the last row written to a table, to write again as a
// canary. It holds one row, whose strings may share a batch's record.
type lastWritten[T any] struct {
	mu  sync.Mutex
	row T
	ok  bool
}

func (l *lastWritten[T]) set(row T) {
	l.mu.Lock()
	l.row, l.ok = row, true
	l.mu.Unlock()
}

// get returns the row, or fallback when none was written yet.
func (l *lastWritten[T]) get(fallback T) T {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ok {
		return l.row
	}
	return fallback
}

// The fixed canaries: rows of canaryOrg, valid for every column.
var (
	canaryTime     = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	canaryEventRow = EventRow{EventKey: EventKey{OrgID: canaryOrg, CustomerID: "canary", ID: "canary"},
		Type: "canary", Source: "tally-aggregator", Time: canaryTime, Properties: "{}", IngestedAt: canaryTime}
	canaryReadingRow = ReadingRow{OrgID: canaryOrg, MeterKey: "canary", MeterRevision: 1, CustomerID: "canary",
		EventID: "canary", Time: canaryTime, GroupKeys: []string{}, GroupValues: []string{}, IngestedAt: canaryTime}
	canaryDeadLetterRow = DeadLetterRow{OrgID: canaryOrg, CustomerID: "canary", EventID: "canary", EventType: "canary",
		MeterKey: "canary", Reason: "canary", Message: "written to check that the table takes rows",
		Time: canaryTime, IngestedAt: canaryTime, DeadLetteredAt: canaryTime}
)

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
	canary := func() error {
		rows, err := withShardCanaries(ctx, s, tableEvents, s.lastEvent.get(canaryEventRow), canaryEventRow,
			func(r EventRow, customer string) EventRow { r.CustomerID = customer; return r })
		if err != nil {
			return err
		}
		return s.next.InsertEvents(ctx, rows)
	}
	return s.insertOrPark(ctx, tableEvents, parkedEvent, len(rows), canary, func(lo, hi int) error {
		if err := s.next.InsertEvents(ctx, rows[lo:hi]); err != nil {
			return err
		}
		s.lastEvent.set(rows[lo])
		return nil
	})
}

// InsertReadings returns a *ParkedError for rows that cannot be written.
func (s *retryingStore) InsertReadings(ctx context.Context, rows []ReadingRow) error {
	canary := func() error {
		rows, err := withShardCanaries(ctx, s, tableReadings, s.lastReading.get(canaryReadingRow), canaryReadingRow,
			func(r ReadingRow, customer string) ReadingRow { r.CustomerID = customer; return r })
		if err != nil {
			return err
		}
		return s.next.InsertReadings(ctx, rows)
	}
	return s.insertOrPark(ctx, tableReadings, parkedReading, len(rows), canary, func(lo, hi int) error {
		if err := s.next.InsertReadings(ctx, rows[lo:hi]); err != nil {
			return err
		}
		s.lastReading.set(rows[lo])
		return nil
	})
}

// InsertDeadLetters writes a shortened copy of a row that cannot be
// written, and logs the row if even that fails; it returns only ctx's
// error. The rows are sent in chunks of at most deadLetterChunkBytes
// (and at least one row), so the block being built is bounded whatever
// the number of rows.
func (s *retryingStore) InsertDeadLetters(ctx context.Context, rows []DeadLetterRow) error {
	return inDeadLetterChunks(rows, func(chunk []DeadLetterRow) error { return s.insertDeadLetters(ctx, chunk) })
}

func (s *retryingStore) insertDeadLetters(ctx context.Context, rows []DeadLetterRow) error {
	canary := func() error {
		rows, err := withShardCanaries(ctx, s, tableDeadLetters, canaryDeadLetterRow, canaryDeadLetterRow,
			func(r DeadLetterRow, customer string) DeadLetterRow { r.CustomerID = customer; return r })
		if err != nil {
			return err
		}
		return s.next.InsertDeadLetters(ctx, rows)
	}
	err := s.insertOrPark(ctx, tableDeadLetters, parkedDeadLetter, len(rows), canary, func(lo, hi int) error {
		return s.next.InsertDeadLetters(ctx, rows[lo:hi])
	})
	var parked *ParkedError
	if !errors.As(err, &parked) {
		return err
	}
	return s.retry.writeShortened(ctx, s.parking(ctx, tableDeadLetters, canary), rows, parked, "it could not be stored", "store", s.metrics,
		func(stubs []DeadLetterRow) error { return s.next.InsertDeadLetters(ctx, stubs) })
}

// insertOrPark writes with write(lo, hi), parking the rows whose failure
// is about their data (chclient.IsDataError) once canary or another part
// of the write shows that the table takes rows.
func (s *retryingStore) insertOrPark(ctx context.Context, table, reason string, n int, canary func() error, write func(lo, hi int) error) error {
	parked, err := s.retry.writeOrPark(ctx, s.parking(ctx, table, canary), n, write)
	if err != nil {
		return err
	}
	if parked == nil {
		return nil
	}
	s.metrics.parked.WithLabelValues(reason).Add(float64(len(parked.Rows)))
	return parked
}

func (s *retryingStore) parking(ctx context.Context, table string, canary func() error) parking {
	op := "insert_" + table
	sharded := func() bool {
		customers, err := s.shards.get(ctx, s.next, table)
		return err != nil || len(customers) > 0 // unknown: the canary decides
	}
	return parking{what: op, counted: s.countInsert(table), permanent: chclient.IsDataError, canary: canary,
		sharded: sharded, systemic: s.metrics.systemic.WithLabelValues(op).Inc}
}

// withShardCanaries returns the canary rows of table: last, and on a
// sharded table a copy of fixed for each shard, with the customer that
// puts it there.
func withShardCanaries[T any](ctx context.Context, s *retryingStore, table string, last, fixed T,
	withCustomer func(T, string) T) ([]T, error) {
	customers, err := s.shards.get(ctx, s.next, table)
	if err != nil {
		return nil, err
	}
	rows := []T{last}
	for _, c := range customers {
		rows = append(rows, withCustomer(fixed, c))
	}
	return rows, nil
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

	// The smallest dead letter of the last publish that went through: the
	// canary of the topic (see "Only rows are parked, never the table").
	lastPublished lastWritten[DeadLetterRow]
}

var _ DeadLetterPublisher = (*retryingPublisher)(nil)

// PublishDeadLetters publishes a shortened copy of a dead letter that the
// topic refuses (unpublishable), and logs it if the topic refuses that
// too, once another dead letter went through; it returns only ctx's
// error. The rows are published in chunks of at most deadLetterChunkBytes
// (and at least one row), so the messages encoded at once are bounded
// whatever the number of rows.
func (p *retryingPublisher) PublishDeadLetters(ctx context.Context, rows []DeadLetterRow) error {
	return inDeadLetterChunks(rows, func(chunk []DeadLetterRow) error { return p.publish(ctx, chunk) })
}

// inDeadLetterChunks calls f with rows cut by deadLetterChunk, in order,
// until one call fails.
func inDeadLetterChunks(rows []DeadLetterRow, f func([]DeadLetterRow) error) error {
	for len(rows) > 0 {
		n := deadLetterChunk(rows)
		if err := f(rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

func (p *retryingPublisher) publish(ctx context.Context, rows []DeadLetterRow) error {
	park := parking{what: opPublishDeadLetters, counted: p.metrics.otherRetries.WithLabelValues(opPublishDeadLetters).Inc,
		permanent: unpublishable, systemic: p.metrics.systemic.WithLabelValues(opPublishDeadLetters).Inc}
	publish := func(rows []DeadLetterRow) error {
		if err := p.next.PublishDeadLetters(ctx, rows); err != nil {
			return err
		}
		smallest := 0
		for i := range rows {
			if len(rows[i].Payload) < len(rows[smallest].Payload) {
				smallest = i
			}
		}
		p.lastPublished.set(rows[smallest])
		return nil
	}
	// A dead letter refused whole is replaced by a shortened copy, which
	// needs no proof: it is not lost.
	parked, err := p.retry.writeOrPark(ctx, park, len(rows), func(lo, hi int) error { return publish(rows[lo:hi]) })
	if err != nil || parked == nil {
		return err
	}
	p.metrics.parked.WithLabelValues(parkedUnpublished).Add(float64(len(parked.Rows)))
	park.canary = func() error {
		last := p.lastPublished.get(DeadLetterRow{})
		if last.Reason == "" {
			return errNoCanary
		}
		return p.next.PublishDeadLetters(ctx, []DeadLetterRow{last})
	}
	return p.retry.writeShortened(ctx, park, rows, parked, "the dead-letter topic refused it", "topic", p.metrics, publish)
}

// writeShortened writes, with write, a shortened copy of each parked row
// of rows in its place, and logs (at where) the copies that cannot be
// written either; it returns only ctx's error.
func (r retrier) writeShortened(ctx context.Context, park parking, rows []DeadLetterRow, parked *ParkedError,
	why, where string, m *metrics, write func([]DeadLetterRow) error) error {
	stubs := make([]DeadLetterRow, len(parked.Rows))
	for i, j := range parked.Rows {
		stubs[i] = shortenedDeadLetter(rows[j], why, parked.Cause(i))
	}
	lost, err := r.writeOrPark(ctx, park, len(stubs), func(lo, hi int) error { return write(stubs[lo:hi]) })
	if err != nil || lost == nil {
		return err
	}
	for k, j := range lost.Rows {
		logLostDeadLetter(r.logger, m, where, stubs[j], lost.Cause(k))
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

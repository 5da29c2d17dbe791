package aggregator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/schemas"
)

// backfiller computes the readings of meter revisions from the events
// stored before the live path knew them.
//
// Why no event is missed by both paths: a batch stores its events (step 4)
// before it loads the meters (step 5). If that load did not include
// revision R, R was created after it, so after the events were stored; the
// backfill of R reads the events table after R was seen, so it finds them.
// Why none counts twice: both paths write the same reading row for an
// (event, revision) pair, and readings fold on their identity.
//
// Completion is recorded in meter_backfills; a backfill cut short by a crash
// has no row there and is redone by the next aggregator that sees R.
//
// # Meters that stop validating
//
// While a stored meter does not validate, the live path dead-letters its
// events as meter_invalid instead of metering them (batch.go). They are
// recomputed here, by backfilling the revision again once it validates:
//
//   - fixed by a new definition (PUT, or DELETE and POST): a new revision,
//     never backfilled, so it is backfilled from all stored events;
//   - valid again with its revision (rules relaxed by an upgrade, a row
//     repaired by hand) while this process runs: the process saw it
//     invalid (observeInvalid), so it backfills it again when it sees it
//     valid, even if its backfill had completed;
//   - valid again while no aggregator saw the change: a starting
//     aggregator treats a completed backfill of R as not done when the
//     meter's last meter_invalid dead letter is less than
//     invalidRecheckMargin older than that completion (the dead letter
//     may have been written by another aggregator whose clock is off, or
//     during a backfill that began before it). Redoing a backfill is
//     harmless, so erring this way costs work, never numbers.
//
// # Readings that were parked
//
// A reading that ClickHouse refuses for a reason about the row, while the
// table takes rows (retry.go), is parked: dead-lettered as unwritable
// with its meter key, the record and the reason, while its event stays
// stored. A re-send of the event is then a duplicate, so the reading is
// recovered here instead: a starting aggregator treats the meter's
// revisions like those of a meter that was invalid (above), by the time
// of the meter's last unwritable dead letter, and backfills them again.
// So once the cause is fixed (a column widened, say), restarting the
// aggregators recomputes the missing readings; until then each start
// parks them again, which costs a backfill, never numbers.
type backfiller struct {
	source  BackfillSource
	store   Store
	retry   retrier
	metrics *metrics
	logger  *slog.Logger

	// halted, if set, says why consumption is halted (the event topic's
	// partition count or, on a cluster, the shard layout is not the
	// accepted one): the backfiller writes through the same Distributed
	// tables, so while it is, no backfill writes (assignment.go).
	halted func() error

	mu      sync.Mutex
	known   map[revision]bool // queued or done in this process
	invalid map[revision]bool // seen not validating since last queued
	pending []revisionWork
	wake    chan struct{}
}

// invalidRecheckMargin: see "Meters that stop validating".
const invalidRecheckMargin = time.Hour

type revision = BackfillKey

type revisionWork struct {
	org   string
	meter schemas.Meter
	force bool // even if its backfill completed: it did not validate since
}

// backfillChunk and backfillChunkBytes bound the rows held in memory and
// sent per insert: a chunk is flushed at 10,000 rows or once its rows
// (readings, and dead letters with their records) reach 8 MiB, so a
// chunk holds at most 8 MiB plus one event's rows. The backfill meters one
// revision, so an event has at most one dead letter in it.
const (
	backfillChunk      = 10_000
	backfillChunkBytes = 8 << 20
)

func newBackfiller(source BackfillSource, store Store, retry retrier, m *metrics, logger *slog.Logger) *backfiller {
	return &backfiller{source: source, store: store, retry: retry, metrics: m, logger: logger,
		known: map[revision]bool{}, invalid: map[revision]bool{}, wake: make(chan struct{}, 1)}
}

// observeInvalid notes the meter revisions that do not validate (nil:
// none), so that observe backfills them again once they do.
func (b *backfiller) observeInvalid(invalid *meterstore.InvalidMetersError) {
	if invalid == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range invalid.Meters {
		b.invalid[revision{OrgID: m.OrgID, MeterKey: m.Key, Revision: m.Revision}] = true
	}
}

// observe queues the revisions not seen before, and those seen invalid
// since they were last queued. It is called by every batch with the
// meters it loaded, and never blocks it.
func (b *backfiller) observe(all map[string][]schemas.Meter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	added := false
	for org, meters := range all {
		for _, m := range meters {
			r := revision{OrgID: org, MeterKey: m.Key, Revision: m.Revision}
			if b.invalid[r] || !b.known[r] {
				b.pending = append(b.pending, revisionWork{org: org, meter: m, force: b.invalid[r]})
				b.known[r] = true
				delete(b.invalid, r)
				added = true
			}
		}
	}
	if added {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

func (b *backfiller) next() (revisionWork, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) == 0 {
		return revisionWork{}, false
	}
	w := b.pending[0]
	b.pending = b.pending[1:]
	return w, true
}

// meterPollInterval is how often the backfiller looks for new meter
// revisions by itself. Batches report the meters they load too, but a
// meter created while no events arrive must not wait for the next event
// to show the usage of the events stored before it.
const meterPollInterval = 2 * time.Second

// watch reports the meters to observe every interval (and at once) until
// ctx is done. A failed load is skipped: the next tick or batch tries again.
func (b *backfiller) watch(ctx context.Context, meters MeterSource, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		if all, err := meters.ListAll(ctx); all != nil {
			// The gauge follows here too, so it is right while no
			// events arrive.
			var invalid *meterstore.InvalidMetersError
			if errors.As(err, &invalid) {
				b.observeInvalid(invalid)
				b.metrics.invalidMeters.Set(float64(len(invalid.Meters)))
			} else if err == nil {
				b.metrics.invalidMeters.Set(0)
			}
			b.observe(all)
		} else if err != nil && ctx.Err() == nil {
			b.logger.Debug("polling meters for backfills failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// run backfills queued revisions one at a time until ctx is done.
func (b *backfiller) run(ctx context.Context) {
	var done map[revision]bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		}
		if done == nil {
			// Loaded once: afterwards, this process's own completions are
			// the only ones it needs to know about (it queues each
			// revision once).
			if err := b.retry.do(ctx, opBackfill, b.countRetry, func() (err error) {
				done, err = b.completed(ctx)
				return err
			}); err != nil {
				return
			}
		}
		for w, ok := b.next(); ok; w, ok = b.next() {
			r := revision{OrgID: w.org, MeterKey: w.meter.Key, Revision: w.meter.Revision}
			if done[r] && !w.force {
				continue
			}
			start := time.Now()
			var events int
			if err := b.retry.do(ctx, opBackfill, b.countRetry, func() (err error) {
				events, err = b.backfill(ctx, w)
				return err
			}); err != nil {
				return // ctx is done; the next aggregator redoes it
			}
			b.metrics.backfills.Inc()
			b.logger.Info("backfilled meter revision", "org_id", w.org, "meter", w.meter.Key,
				"revision", w.meter.Revision, "events", events, "duration", time.Since(start).Round(time.Millisecond))
		}
	}
}

// completed returns the revisions whose backfill completed and need not be
// redone: not those whose meter was dead-lettered as meter_invalid too
// recently before (see "Meters that stop validating").
func (b *backfiller) completed(ctx context.Context) (map[revision]bool, error) {
	completions, err := b.source.CompletedBackfills(ctx)
	if err != nil {
		return nil, err
	}
	invalidSince, err := b.source.InvalidMeterDeadLetters(ctx)
	if err != nil {
		return nil, err
	}
	done := make(map[revision]bool, len(completions))
	for r, at := range completions {
		last, wasInvalid := invalidSince[revision{OrgID: r.OrgID, MeterKey: r.MeterKey}]
		done[r] = !wasInvalid || at.After(last.Add(invalidRecheckMargin))
	}
	return done, nil
}

func (b *backfiller) countRetry() { b.metrics.otherRetries.WithLabelValues(opBackfill).Inc() }

// backfill evaluates the meter over the organization's stored events of its
// types (its event_type and its addressed type), writes readings and dead letters in chunks, then records
// completion. The events table holds only first versions, so duplicates
// are excluded; no FINAL, because unmerged copies of an event produce the
// same rows, which fold. Dead letters go to the table only: the topic
// carries those of the live stream.
func (b *backfiller) backfill(ctx context.Context, w revisionWork) (int, error) {
	if err := b.paused(); err != nil {
		return 0, err
	}
	meters := newMeterSet([]*schemas.Meter{&w.meter})
	now := time.Now().UTC()
	var c backfillChunkRows
	n := 0
	err := b.source.ScanEvents(ctx, w.org, meteredTypes(&w.meter), func(rec schemas.Record, pos Position) error {
		n++
		rs, failures := evaluate(rec, rec.IngestedAt, meters)
		c.readings = append(c.readings, rs...)
		for i := range rs {
			c.sources = append(c.sources, readingSource{typ: rec.Event.Type, pos: pos})
			c.bytes += rs[i].size()
		}
		for _, f := range failures {
			dl := backfillDeadLetter(rec, pos, f, now)
			c.deadLetters = append(c.deadLetters, dl)
			c.bytes += dl.size()
		}
		if len(c.readings)+len(c.deadLetters) < backfillChunk && c.bytes < backfillChunkBytes {
			return nil
		}
		if err := b.flush(ctx, &c, now); err != nil {
			return err
		}
		clear(c.deadLetters) // let go of the records
		c = backfillChunkRows{readings: c.readings[:0], sources: c.sources[:0], deadLetters: c.deadLetters[:0]}
		return nil
	})
	if err != nil {
		return n, err
	}
	if err := b.flush(ctx, &c, now); err != nil {
		return n, err
	}
	if err := b.paused(); err != nil {
		return n, err
	}
	return n, b.source.MarkBackfilled(ctx, BackfillKey{OrgID: w.org, MeterKey: w.meter.Key, Revision: w.meter.Revision}, n)
}

// paused fails while consumption is halted (backfiller.halted): a backfill
// that meets it is retried from the start, with backoff, and completes
// only once the halt has ended; its chunks written before the halt are
// rewritten then, and fold. A chunk whose insert began just before the
// halt was noticed (within the guard's 5 s) is not undone, as for the
// partitions' batches.
func (b *backfiller) paused() error {
	if b.halted == nil {
		return nil
	}
	if err := b.halted(); err != nil {
		return fmt.Errorf("backfill paused while consumption is halted: %w", err)
	}
	return nil
}

// backfillChunkRows are the rows of one chunk; sources[i] is where
// readings[i] comes from, so that a reading that cannot be written can be
// dead-lettered (without holding the events' properties).
type backfillChunkRows struct {
	readings    []ReadingRow
	sources     []readingSource
	deadLetters []DeadLetterRow
	bytes       int // about what the rows hold
}

// size is about what r holds.
func (r *ReadingRow) size() int {
	n := len(r.OrgID) + len(r.MeterKey) + len(r.CustomerID) + len(r.EventID) + len(r.DistinctValue) + 200
	for i := range r.GroupKeys {
		n += len(r.GroupKeys[i]) + 16
	}
	for i := range r.GroupValues {
		n += len(r.GroupValues[i]) + 16
	}
	return n
}

type readingSource struct {
	typ string
	pos Position
}

// flush writes a chunk. A reading parked by the Store (retry.go) is
// dead-lettered as unwritable, as on the live path.
func (b *backfiller) flush(ctx context.Context, c *backfillChunkRows, now time.Time) error {
	if err := b.paused(); err != nil {
		return err
	}
	if err := b.store.InsertReadings(ctx, c.readings); err != nil {
		var parked *ParkedError
		if !errors.As(err, &parked) {
			return err
		}
		for k, i := range parked.Rows {
			r, src := c.readings[i], c.sources[i]
			c.deadLetters = append(c.deadLetters, DeadLetterRow{
				OrgID: r.OrgID, CustomerID: r.CustomerID, EventID: r.EventID, EventType: src.typ, MeterKey: r.MeterKey,
				Reason:  schemas.ReasonUnwritable,
				Message: readingParked + ", for a reason retrying cannot fix: " + schemas.QuoteValue(parked.Cause(k).Error()),
				Time:    r.Time, IngestedAt: r.IngestedAt, DeadLetteredAt: now, Position: src.pos,
			}.bounded())
		}
	}
	return b.store.InsertDeadLetters(ctx, c.deadLetters)
}

// backfillDeadLetter rebuilds the dead letter the live path writes for the
// same event and meter; it has the same identity, so the two fold.
func backfillDeadLetter(rec schemas.Record, pos Position, f evalFailure, now time.Time) DeadLetterRow {
	key, value, err := schemas.EncodeRecord(rec)
	if err != nil {
		value = nil // the row is still worth having without its payload
	}
	return DeadLetterRow{
		OrgID: rec.OrgID, CustomerID: rec.Event.CustomerID, EventID: rec.Event.ID, EventType: rec.Event.Type,
		MeterKey: f.meterKey, Reason: f.reason, Message: f.message, Payload: value, Key: key,
		Time: rec.Event.Time, IngestedAt: rec.IngestedAt, DeadLetteredAt: now, Position: pos,
	}.bounded()
}

package aggregator

import (
	"context"
	"errors"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/schemas"
)

// MeterSource lists the live meters of every organization. It is called
// for every batch, so a meter takes effect with the next batch.
// meterstore.Store satisfies it. A non-nil map returned with an error means
// that some stored meters could not be read; the others are used. When the
// error is a *meterstore.InvalidMetersError, the events of the meters it
// names are dead-lettered as meter_invalid.
type MeterSource interface {
	ListAll(ctx context.Context) (map[string][]schemas.Meter, error)
}

// processor turns one partition's batch of records into rows. Its Store,
// MeterSource and DeadLetterPublisher retry on their own, so process fails
// only when ctx ends, and then nothing may be committed.
type processor struct {
	store     Store
	meters    MeterSource
	publisher DeadLetterPublisher
	backfill  *backfiller // nil when disabled
	now       func() time.Time
}

// batchResult is what a stored batch reports once its offset is committed.
type batchResult struct {
	outcomes    map[string]int
	deadLetters map[string]int // by reason
	ingestedAt  []time.Time    // of the events stored, for pipeline latency
}

// record is one Kafka record of the batch and what became of it.
type record struct {
	index   int // in the pass's msgs
	msg     kafka.Message
	rec     schemas.Record
	key     EventKey
	outcome string
}

// maxPassRows bounds the readings and dead letters that one pass over a
// batch holds. Each meter of an event's type makes a row of a few hundred
// bytes (without the record), so a batch of 10,000 events of a type with
// 20 meters would hold 200,000 rows at once; past this many, the pass
// ends after the event that reached it and the rest of the batch is
// processed in another pass. The bound is then about maxPassRows x 600
// bytes (60 MiB) plus one event's rows, whatever the number of meters.
const maxPassRows = 100_000

// process runs steps 1-8 for msgs, records of one partition in offset
// order. The caller commits (step 9) only if it returns nil. A batch
// whose events make more than maxPassRows rows is processed in several
// passes, each over the records its predecessor did not finish; a record
// whose event the previous pass stored is at its own position, so it is
// processed again as a redelivery would be (doc.go), and its duplicates
// are found by the lookup as in a later batch.
func (p *processor) process(ctx context.Context, msgs []kafka.Message) (*batchResult, error) {
	res := &batchResult{outcomes: map[string]int{}, deadLetters: map[string]int{}}
	for len(msgs) > 0 {
		done, err := p.pass(ctx, msgs, res)
		if err != nil {
			return nil, err
		}
		msgs = msgs[done:]
	}
	return res, nil
}

// pass processes msgs, or a prefix of them when their rows reach
// maxPassRows, adding to res; it returns how many it processed.
func (p *processor) pass(ctx context.Context, msgs []kafka.Message, res *batchResult) (int, error) {
	now := p.now().UTC()

	// 1. Decode. An unreadable record is dead-lettered with its position
	// (it has no identity) instead of stalling the partition.
	records := make([]record, len(msgs))
	var deadLetters []DeadLetterRow
	for i, msg := range msgs {
		records[i].index, records[i].msg = i, msg
		rec, err := schemas.DecodeRecord(msg.Value)
		if err != nil {
			records[i].outcome = outcomeDeadLettered
			deadLetters = append(deadLetters, malformedDeadLetter(msg, err, now))
			continue
		}
		records[i].rec = rec
		records[i].key = EventKey{OrgID: rec.OrgID, CustomerID: rec.Event.CustomerID, ID: rec.Event.ID}
	}

	// 2. In-batch dedup: records arrive in offset order, so the first
	// occurrence of an identity is its earliest version in this batch.
	first := make(map[EventKey]int, len(records))
	keys := make([]EventKey, 0, len(records))
	for i := range records {
		r := &records[i]
		if r.outcome != "" {
			continue
		}
		if _, seen := first[r.key]; seen {
			r.outcome = outcomeDuplicate
			continue
		}
		first[r.key] = i
		keys = append(keys, r.key)
	}

	// 3. Look up earlier batches. A stored row at this record's own position
	// is this very record, written before a crash or rebalance cut the batch
	// short: it is processed again, which is idempotent and repairs any rows
	// the interrupted attempt did not write. A row at another position is an
	// earlier version: this one is a duplicate and changes nothing.
	stored, err := p.store.StoredVersions(ctx, keys)
	if err != nil {
		return 0, err
	}
	events := make([]EventRow, 0, len(keys))
	accepted := make([]*record, 0, len(keys))
	for _, k := range keys {
		r := &records[first[k]]
		pos := position(r.msg)
		if positions, ok := stored[k]; ok && !containsPosition(positions, pos) {
			r.outcome = outcomeDuplicate
			continue
		}
		accepted = append(accepted, r)
		events = append(events, eventRow(r, pos))
	}

	// 4. Store the raw first versions. This comes before evaluating so that
	// a meter created after step 5 finds these events when it is backfilled
	// (no event is missed by both paths), and so that the next batch's
	// lookup (step 3) sees them.
	// An event that cannot be stored for a reason retrying cannot fix is
	// parked (retry.go): dead-lettered instead, and neither metered nor
	// remembered, so that it cannot stall the partition.
	if err := p.store.InsertEvents(ctx, events); err != nil {
		var parked *ParkedError
		if !errors.As(err, &parked) {
			return 0, err
		}
		unwritable := make(map[int]bool, len(parked.Rows))
		for k, i := range parked.Rows {
			unwritable[i] = true
			r := accepted[i]
			r.outcome = outcomeDeadLettered
			deadLetters = append(deadLetters, unwritableDeadLetter(r, "", "the event cannot be stored", parked.Cause(k), now))
		}
		kept := accepted[:0]
		for i, r := range accepted {
			if !unwritable[i] {
				kept = append(kept, r)
			}
		}
		accepted = kept
	}

	// 5. Load the meters, after step 4 (see there).
	meters, err := p.meters.ListAll(ctx)
	var invalid *meterstore.InvalidMetersError
	if err != nil && (meters == nil || !errors.As(err, &invalid)) {
		return 0, err
	}
	if p.backfill != nil {
		p.backfill.observeInvalid(invalid) // before observe: see there
		p.backfill.observe(meters)
	}

	// 6. Evaluate each stored event against its organization's meters of
	// its type.
	index := indexMeters(meters)
	broken := indexInvalid(invalid)
	var readings []ReadingRow
	var readingOf []*record // the record of each reading
	done := len(msgs)       // records of this pass: msgs[:done]
	for i, r := range accepted {
		if i > 0 && len(readings)+len(deadLetters) >= maxPassRows {
			done = r.index // > 0: accepted[0] is before it
			break
		}
		ingested := ingestedAt(r.rec, r.msg)
		rs, dls := evaluate(r.rec, ingested, index[r.key.OrgID][r.rec.Event.Type])
		readings = append(readings, rs...)
		for range rs {
			readingOf = append(readingOf, r)
		}
		// A meter that no longer validates might have metered the event:
		// say so per event, rather than committing it silently unmetered.
		// The backfill recomputes it once the meter validates again.
		dls = append(dls, broken[r.key.OrgID][r.rec.Event.Type]...)
		for i := range dls {
			deadLetters = append(deadLetters, evalDeadLetter(r, dls[i], now))
		}
		switch {
		case len(dls) > 0:
			r.outcome = outcomeDeadLettered
		case len(rs) > 0:
			r.outcome = outcomeMetered
		default:
			r.outcome = outcomeUnmatched
		}
		res.ingestedAt = append(res.ingestedAt, ingested)
	}

	if done < len(msgs) {
		// The records from done on belong to the next pass: drop what
		// this one found about them (their events stay stored).
		end := msgs[done].Offset
		kept := deadLetters[:0]
		for _, dl := range deadLetters {
			if dl.Offset < end {
				kept = append(kept, dl)
			}
		}
		clear(deadLetters[len(kept):])
		deadLetters = kept
		records = records[:done]
	}

	// 7. Store readings and dead letters. A reading that cannot be
	// written for a reason retrying cannot fix is dead-lettered instead;
	// its event is stored, so its meter is backfilled again at the next
	// start (backfill.go, "Readings that were parked").
	if err := p.store.InsertReadings(ctx, readings); err != nil {
		var parked *ParkedError
		if !errors.As(err, &parked) {
			return 0, err
		}
		for k, i := range parked.Rows {
			r := readingOf[i]
			r.outcome = outcomeDeadLettered
			deadLetters = append(deadLetters, unwritableDeadLetter(r, readings[i].MeterKey, readingParked, parked.Cause(k), now))
		}
	}
	// A record is carried by one of its dead letters only, and messages
	// are bounded per batch, so the dead letters' bytes are bounded by the
	// batch's however many meters fail (deadletter.go).
	boundBatchDeadLetters(deadLetters)
	if err := p.store.InsertDeadLetters(ctx, deadLetters); err != nil {
		return 0, err
	}

	// 8. Publish the dead letters, so whoever replays them learns of them
	// without polling ClickHouse. After this the batch may be committed.
	if err := p.publisher.PublishDeadLetters(ctx, deadLetters); err != nil {
		return 0, err
	}

	for i := range records {
		res.outcomes[records[i].outcome]++
	}
	for _, dl := range deadLetters {
		res.deadLetters[dl.Reason]++
	}
	return done, nil
}

func position(msg kafka.Message) Position {
	return Position{Partition: int32(msg.Partition), Offset: msg.Offset}
}

func containsPosition(ps []Position, p Position) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

func eventRow(r *record, pos Position) EventRow {
	ev := r.rec.Event
	return EventRow{
		EventKey: r.key, Type: ev.Type, Source: ev.Source, Time: ev.Time,
		Properties: string(ev.Properties), IngestedAt: ingestedAt(r.rec, r.msg), Position: pos,
	}
}

// ingestedAt falls back to the record's Kafka timestamp for records that
// lack it; both are fixed by the log, so a redelivery writes the same row.
func ingestedAt(rec schemas.Record, msg kafka.Message) time.Time {
	if !rec.IngestedAt.IsZero() {
		return rec.IngestedAt
	}
	return recordTime(msg)
}

func recordTime(msg kafka.Message) time.Time {
	if msg.Time.Unix() <= 0 {
		return time.Unix(0, 0).UTC() // DateTime starts at the epoch
	}
	return msg.Time.UTC()
}

package aggregator

import (
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/schemas"
)

// meterIndex finds the meters that apply to an event: by organization, then
// by event type. Meters of other organizations are never consulted.
type meterIndex map[string]map[string]*meterSet

// meterSet is the meters of one organization and event type, and the
// property paths they read, which evaluate extracts from an event's raw
// properties in one pass (schemas.PropertyPlan) instead of decoding them.
type meterSet struct {
	meters []*schemas.Meter
	plan   *schemas.PropertyPlan
}

func newMeterSet(meters []*schemas.Meter) *meterSet {
	return &meterSet{meters: meters, plan: schemas.NewPropertyPlan(meters)}
}

// indexMeters indexes each meter under its event_type and under its
// addressed type (schemas.AddressedType), which no event_type starts like:
// an addressed event finds its meter alone.
func indexMeters(all map[string][]schemas.Meter) meterIndex {
	idx := make(meterIndex, len(all))
	for org, meters := range all {
		byType := make(map[string][]*schemas.Meter)
		for i := range meters {
			m := &meters[i]
			for _, typ := range meteredTypes(m) {
				byType[typ] = append(byType[typ], m)
			}
		}
		sets := make(map[string]*meterSet, len(byType))
		for typ, ms := range byType {
			sets[typ] = newMeterSet(ms)
		}
		idx[org] = sets
	}
	return idx
}

// meteredTypes are the event types a meter meters: its event_type and its
// addressed type. The live path (indexMeters) and the backfill read both.
func meteredTypes(m *schemas.Meter) []string {
	if addressed := schemas.AddressedType(m.Key); addressed != m.EventType {
		return []string{m.EventType, addressed}
	}
	// A meter stored before the prefix was reserved, whose event_type is
	// its own addressed type: index it once, or it would meter each event
	// twice (the readings would fold, but the work would not).
	return []string{m.EventType}
}

// indexInvalid indexes the meters that no longer validate (nil: none) by
// organization and metered type, as the failure each of their events gets.
// A meter whose definition names no readable event_type is indexed under
// its addressed type only; the log and the gauge still report it.
func indexInvalid(invalid *meterstore.InvalidMetersError) map[string]map[string][]evalFailure {
	if invalid == nil {
		return nil
	}
	idx := map[string]map[string][]evalFailure{}
	for _, m := range invalid.Meters {
		f := evalFailure{meterKey: m.Key, reason: schemas.ReasonMeterInvalid, message: fmt.Sprintf(
			"meter %s (revision %d) no longer validates, so it cannot meter the event; its readings are recomputed "+
				"once it validates again or a fixed definition replaces it: %s", m.Key, m.Revision, schemas.QuoteValue(m.Err.Error()))}
		if idx[m.OrgID] == nil {
			idx[m.OrgID] = map[string][]evalFailure{}
		}
		types := []string{schemas.AddressedType(m.Key)}
		if m.EventType != "" && m.EventType != types[0] {
			types = append(types, m.EventType)
		}
		for _, typ := range types {
			idx[m.OrgID][typ] = append(idx[m.OrgID][typ], f)
		}
	}
	return idx
}

// evalFailure is why one meter cannot meter an event.
type evalFailure struct {
	meterKey, reason, message string
}

// reasonEvaluationFailed covers an error Evaluate is not documented to
// return; dead-lettering it keeps the partition moving.
const reasonEvaluationFailed = schemas.ReasonEvaluationFailed

// evaluate applies set's meters (all of the event's organization and type;
// nil: none) to one event: a reading for each meter that matches, a
// failure for each that matches but cannot meter it, nothing for the
// others. It reads the properties through set's plan, which gives what
// DecodeProperties and Evaluate give (schemas.PropertyPlan).
func evaluate(rec schemas.Record, ingested time.Time, set *meterSet) ([]ReadingRow, []evalFailure) {
	if set == nil || len(set.meters) == 0 {
		return nil, nil // most events: skip reading the properties
	}
	meters := set.meters
	props, err := set.plan.Scan(rec.Event.Properties)
	if err != nil {
		failures := make([]evalFailure, 0, len(meters))
		for _, m := range meters {
			failures = append(failures, failureOf(m.Key, err))
		}
		return nil, failures
	}
	var readings []ReadingRow
	var failures []evalFailure
	for _, m := range meters {
		r, matched, err := m.EvaluateView(props)
		switch {
		case err != nil:
			failures = append(failures, failureOf(m.Key, err))
		case matched:
			readings = append(readings, ReadingRow{
				OrgID: rec.OrgID, MeterKey: m.Key, MeterRevision: m.Revision,
				CustomerID: rec.Event.CustomerID, EventID: rec.Event.ID, Time: rec.Event.Time,
				Value: r.Value, DistinctValue: r.Distinct,
				GroupKeys: m.GroupKeys(), GroupValues: r.GroupValues, IngestedAt: ingested,
			})
		}
	}
	return readings, failures
}

func failureOf(meterKey string, err error) evalFailure {
	var ee *schemas.EvalError
	if errors.As(err, &ee) {
		return evalFailure{meterKey: meterKey, reason: ee.Reason, message: ee.Message}
	}
	return evalFailure{meterKey: meterKey, reason: reasonEvaluationFailed, message: err.Error()}
}

func evalDeadLetter(r *record, f evalFailure, now time.Time) DeadLetterRow {
	ev := r.rec.Event
	return DeadLetterRow{
		OrgID: r.rec.OrgID, CustomerID: ev.CustomerID, EventID: ev.ID, EventType: ev.Type,
		MeterKey: f.meterKey, Reason: f.reason, Message: f.message,
		Payload: r.msg.Value, Key: r.msg.Key,
		Time: ev.Time, IngestedAt: ingestedAt(r.rec, r.msg), DeadLetteredAt: now,
		Position: position(r.msg),
	}.bounded()
}

// readingParked is what the dead letter of a parked reading says.
const readingParked = "its reading cannot be stored (its event is: once the cause is fixed, " +
	"a restarted aggregator backfills the meter again and recomputes it)"

// unwritableDeadLetter records an event (meterKey "") or one of its
// readings that was parked because it cannot be written (retry.go).
func unwritableDeadLetter(r *record, meterKey, what string, cause error, now time.Time) DeadLetterRow {
	return evalDeadLetter(r, evalFailure{meterKey: meterKey, reason: schemas.ReasonUnwritable,
		message: what + ", for a reason retrying cannot fix: " + schemas.QuoteValue(cause.Error())}, now)
}

// malformedDeadLetter records an unreadable record. It has no identity, so
// its Kafka position (part of the dead_letters sort key) keeps it apart
// from other unreadable records, and its Kafka timestamp stands in for the
// times: both are fixed by the log, so a redelivery writes the same row.
func malformedDeadLetter(msg kafka.Message, err error, now time.Time) DeadLetterRow {
	t := recordTime(msg)
	return DeadLetterRow{
		Reason: schemas.ReasonRecordMalformed, Message: err.Error(),
		Payload: msg.Value, Key: msg.Key,
		Time: t, IngestedAt: t, DeadLetteredAt: now, Position: position(msg),
	}.bounded()
}

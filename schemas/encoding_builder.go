package schemas

import "time"

// RecordBuilder turns the events of one request into Kafka records: Add
// reads each event as ParseEvent does and writes its record as
// EncodeRecord does, byte for byte, without the work between the two
// (copying the properties, scanning them again to know they are compact,
// a buffer per record). The records are cut from large buffers shared by
// the records of the request; they stay valid, and are never written
// again, after the builder is dropped. A RecordBuilder is for one
// goroutine.
type RecordBuilder struct {
	orgID      string
	ingestedAt time.Time
	ingested   []byte // ingestedAt as the record value writes it; nil: written by appendRecord
	rules      EventRules
	mem        scanMemory
	buf        []byte
}

// minRecordChunk is the size of the buffers a RecordBuilder allocates
// once its first one is full (or larger, for a larger record).
const minRecordChunk = 64 << 10

// NewRecordBuilder returns a builder of the records of orgID accepted at
// ingestedAt, reading events with rules. events and size are how many
// events are to come and their size in bytes (a request's): the first
// buffer is sized from them.
func NewRecordBuilder(orgID string, ingestedAt time.Time, rules EventRules, events, size int) *RecordBuilder {
	b := &RecordBuilder{orgID: orgID, ingestedAt: ingestedAt, rules: rules}
	if text, err := ingestedAt.UTC().AppendText(nil); err == nil {
		b.ingested = text
	}
	// A record is its event, the organization twice, the customer again
	// (the key), the layout and ingested_at (about 100 bytes), and the
	// time as written (at most 30 bytes).
	b.buf = make([]byte, 0, size+events*(2*len(orgID)+128))
	return b
}

// Add returns the record of the event raw. parseErr is ParseEvent's error
// for raw, encodeErr EncodeRecord's for the event ParseEvent returns; key
// and value are nil when either is not.
func (b *RecordBuilder) Add(raw []byte) (key, value []byte, parseErr, encodeErr error) {
	ev, _, err := parseEvent(raw, b.rules, &b.mem)
	if err != nil {
		return nil, nil, err, nil
	}
	// parseEvent's properties are compact JSON, as ParseEvent's are
	// (FuzzParseEvent checks both): no need to check them again.
	r := Record{OrgID: b.orgID, Event: ev, IngestedAt: b.ingestedAt}
	if need := recordSize(&r); cap(b.buf)-len(b.buf) < need {
		// A new buffer rather than a bigger one: the records already
		// cut from this one stay where they are.
		b.buf = make([]byte, 0, max(need, minRecordChunk))
	}
	var ok bool
	if b.buf, key, value, ok = appendRecord(b.buf, &r, b.ingested); !ok {
		// A time encoding/json refuses: its error. The event's
		// properties are a slice of raw; encoding/json copies them.
		key, value, err = encodeRecordJSON(r)
		return key, value, nil, err
	}
	return key, value, nil, nil
}

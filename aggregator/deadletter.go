package aggregator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/internal/kafkaclient"
	"github.com/tally-oss/tally/schemas"
)

// DeadLetterPublisher hands dead letters to whoever fixes and replays them.
// It returns only after they are durable: the batch's offset is committed
// after it.
type DeadLetterPublisher interface {
	PublishDeadLetters(ctx context.Context, rows []DeadLetterRow) error
}

// DeadLetter is the JSON value of a record on the dead-letter topic. It
// carries the original record so that a consumer of the topic can fix and
// re-submit the event without reading ClickHouse.
type DeadLetter struct {
	OrgID      string `json:"org_id"`
	CustomerID string `json:"customer_id"`
	EventID    string `json:"event_id"`
	MeterKey   string `json:"meter_key,omitempty"`
	Reason     string `json:"reason"`
	Message    string `json:"message"`
	Partition  int32  `json:"partition"`
	Offset     int64  `json:"offset"`
	// Record is the original record value when it is JSON (always, unless
	// the record is malformed); RecordBase64 holds any other bytes.
	Record       json.RawMessage `json:"record,omitempty"`
	RecordBase64 []byte          `json:"record_base64,omitempty"`
	// RecordOmitted is set when the record was too large to repeat here
	// (RecordBytes is then its size; the dead_letters table still holds
	// it, and the events table the event), or when another dead letter
	// carries it (RecordWithMeterKey).
	RecordOmitted bool `json:"record_omitted,omitempty"`
	RecordBytes   int  `json:"record_bytes,omitempty"`
	// RecordWithMeterKey is set when the record is omitted because another
	// dead letter of the same record (same partition and offset), the one
	// of this meter key, carries it: a record is copied once per batch,
	// however many meters fail on it.
	RecordWithMeterKey string `json:"record_with_meter_key,omitempty"`
}

// Bounds of a dead letter. A dead letter that does not fit the writer or
// the broker could never be published, and a write that can never succeed
// would stall the partition forever; so every part is bounded, whatever
// the record held, and the encoded value is provably below the limits:
//
//	value <= maxDeadLetterRecord                  the record copy, verbatim
//	       + 6 x maxDeadLetterMessage              JSON escapes a byte in at most 6
//	       + 6 x 6 x maxDeadLetterField            six string fields
//	       + 1 KiB                                 names, numbers, punctuation
//	      = 512 KiB + 24 KiB + 36 KiB + 1 KiB = 573 KiB <= maxDeadLetterValue (600 KiB)
//
// plus a key of at most maxDeadLetterKey (1 KiB) and a 60-byte header:
// far below the writer's BatchBytes (1 MiB) and Kafka's default
// message.max.bytes (1 MiB + 12 bytes), with room for batch overhead.
// The ClickHouse row (bounded) has the same bounds on message and fields
// and keeps the whole record up to maxDeadLetterPayload. The limits are
// in bytes; a cut string ends in "…(N bytes)" naming its full length.
const (
	// maxDeadLetterRecord bounds the record copied onto the topic, as
	// encoded: a JSON record is copied verbatim up to this size,
	maxDeadLetterRecord = 512 << 10
	// and other bytes up to this size (base64 grows them by 4/3).
	maxDeadLetterRecordBytes = maxDeadLetterRecord / 4 * 3
	// maxDeadLetterMessage bounds the message; the values it quotes are
	// cut to schemas.MaxQuotedValue (256 bytes) before that.
	maxDeadLetterMessage = 4 << 10
	// maxDeadLetterField bounds org_id, customer_id, event_id, event_type,
	// meter_key and reason; ingest's own limits are far lower (256 bytes),
	// so only a record that did not come through ingest is cut.
	maxDeadLetterField = 1 << 10
	// maxDeadLetterKey bounds the Kafka key (the record's key reused).
	maxDeadLetterKey = 1 << 10
	// maxDeadLetterValue is the proven bound on an encoded dead letter.
	maxDeadLetterValue = 600 << 10
	// maxDeadLetterPayload bounds the record kept in the dead_letters
	// table: twice Kafka's default message limit, so a record from any
	// topic with default settings is kept whole.
	maxDeadLetterPayload = 2 << 20
	// deadLetterBatchBytes is the writer's BatchBytes.
	deadLetterBatchBytes = 1 << 20
	// deadLetterChunkBytes bounds the rows (records, messages, fields)
	// sent in one insert or publish: the block or the encoded messages of
	// a chunk are what is copied at once.
	deadLetterChunkBytes = 4 << 20
	// deadLetterMessageBudget bounds the messages of one batch's dead
	// letters in full; beyond it, messages are cut to
	// schemas.MaxQuotedValue (a batch of many events that many meters
	// fail on).
	deadLetterMessageBudget = 1 << 20
)

// Bounds of one batch's dead letters in memory. Every meter that fails on
// an event makes its own dead-letter row (the table's identity includes
// the meter), so the rows of a batch are at most records x (meters of the
// event's type + 1). Their bytes are bounded by the batch's, not by the
// number of meters:
//
//   - records: a record is carried by the first dead letter of it in the
//     batch only (boundBatchDeadLetters); the others omit it and name the
//     meter of the one that carries it. The rows share the batch's bytes
//     (no copy), so the records of all rows add at most the batch's
//     record bytes (aggregator.batch-max-bytes, 16 MiB) and nothing to
//     memory;
//   - messages: at most deadLetterMessageBudget (1 MiB) in full, then
//     schemas.MaxQuotedValue (256 bytes) plus a short note each;
//   - what is copied at once: the store inserts and the publisher
//     publishes in chunks of deadLetterChunkBytes (4 MiB, at least one
//     row; a row is at most maxDeadLetterPayload + 12 KiB), so one block
//     or one chunk of encoded messages is built at a time.
//
// What grows with the number of failing meters is the rows themselves: a
// struct of about 300 bytes plus a message of at most 256 bytes (past the
// budget) for each (event, failing meter), as readings do for each
// (event, matching meter). A pass over a batch stops after the event
// whose rows reach maxPassRows (100,000; batch.go), so one pass holds at
// most about 60 MiB of rows plus one event's, whatever the number of
// meters, besides the batch's records.

// deadLetterChunk returns how many of rows, at least one, make a chunk of
// at most deadLetterChunkBytes.
func deadLetterChunk(rows []DeadLetterRow) int {
	size := 0
	for i := range rows {
		size += rows[i].size()
		if size > deadLetterChunkBytes && i > 0 {
			return i
		}
	}
	return len(rows)
}

// size is about what r takes in a block or an encoded message.
func (r *DeadLetterRow) size() int {
	return len(r.Payload) + len(r.Key) + len(r.Message) + len(r.OrgID) + len(r.CustomerID) + len(r.EventID) +
		len(r.EventType) + len(r.MeterKey) + len(r.Reason) + 128
}

// boundBatchDeadLetters applies the bounds of one batch's dead letters
// (above) to rows, in place: the record stays with the first dead letter
// of each Kafka record, and messages beyond the budget are cut.
func boundBatchDeadLetters(rows []DeadLetterRow) {
	carrier := make(map[Position]int)
	messages := 0
	for i := range rows {
		r := &rows[i]
		if messages += len(r.Message); messages > deadLetterMessageBudget {
			r.Message = schemas.Truncate(r.Message, schemas.MaxQuotedValue)
		}
		if len(r.Payload) > 0 {
			if c, ok := carrier[r.Position]; ok {
				note := fmt.Sprintf(" [record of %d bytes kept with this record's dead letter for meter %q]",
					len(r.Payload), schemas.Truncate(rows[c].MeterKey, schemas.MaxQuotedValue))
				r.Message = schemas.Truncate(r.Message, maxDeadLetterMessage-len(note)) + note
				r.RecordBytes, r.RecordWith, r.Payload = len(r.Payload), rows[c].MeterKey, nil
			} else {
				carrier[r.Position] = i
			}
		}
	}
}

// DeadLetterContentType is the content-type header of dead-letter records.
const DeadLetterContentType = "application/vnd.tally.dead-letter.v1+json"

// bounded returns r with its fields, message, key and payload cut to the
// bounds above. Every dead-letter row is built through it, so the table
// and the topic hold the same message.
func (r DeadLetterRow) bounded() DeadLetterRow {
	for _, f := range []*string{&r.OrgID, &r.CustomerID, &r.EventID, &r.EventType, &r.MeterKey, &r.Reason} {
		*f = schemas.Truncate(*f, maxDeadLetterField)
	}
	if len(r.Payload) > maxDeadLetterPayload {
		r.Message += fmt.Sprintf(" (payload cut to its first %d of %d bytes)", maxDeadLetterPayload, len(r.Payload))
		r.Payload = r.Payload[:maxDeadLetterPayload]
	}
	r.Message = schemas.Truncate(r.Message, maxDeadLetterMessage)
	if len(r.Key) > maxDeadLetterKey {
		r.Key = r.Key[:maxDeadLetterKey] // a routing key: its prefix routes as well
	}
	return r
}

// deadLetterKey is the Kafka key of r's dead letter: the original record's
// key, so that one customer's dead letters stay in order.
func deadLetterKey(r DeadLetterRow) []byte {
	key := r.bounded().Key
	if len(key) == 0 {
		key = schemas.RecordKey(r.OrgID, r.CustomerID)
		if len(key) > maxDeadLetterKey {
			key = key[:maxDeadLetterKey]
		}
	}
	return key
}

func encodeDeadLetter(r DeadLetterRow) ([]byte, error) {
	size := len(r.Payload)
	r = r.bounded()
	dl := DeadLetter{
		OrgID: r.OrgID, CustomerID: r.CustomerID, EventID: r.EventID, MeterKey: r.MeterKey,
		Reason: r.Reason, Message: r.Message, Partition: r.Partition, Offset: r.Offset,
	}
	switch {
	case size == 0 && r.RecordBytes > 0: // another dead letter carries it
		dl.RecordOmitted, dl.RecordBytes = true, r.RecordBytes
		dl.RecordWithMeterKey = schemas.Truncate(r.RecordWith, maxDeadLetterField)
	case size <= maxDeadLetterRecord && json.Valid(r.Payload):
		dl.Record = r.Payload
	case size <= maxDeadLetterRecordBytes:
		dl.RecordBase64 = r.Payload
	default:
		dl.RecordOmitted, dl.RecordBytes = true, size
	}
	b, err := marshalDeadLetter(dl)
	if err != nil {
		return nil, err
	}
	if len(b) > maxDeadLetterValue { // unreachable (see the bounds); never publish what cannot fit
		dl.Record, dl.RecordBase64, dl.RecordOmitted, dl.RecordBytes = nil, nil, true, size
		return marshalDeadLetter(dl)
	}
	return b, nil
}

// marshalDeadLetter encodes without HTML escaping: json.Marshal would
// rewrite every '<', '>' and '&' of the copied record as six bytes, so a
// record of half a megabyte could become three.
func marshalDeadLetter(dl DeadLetter) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(dl); err != nil {
		return nil, fmt.Errorf("encode dead letter: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// kafkaPublisher writes dead letters to the dead-letter topic with the
// original record's key, so one customer's dead letters stay in order.
type kafkaPublisher struct {
	writer *kafka.Writer
}

var _ DeadLetterPublisher = (*kafkaPublisher)(nil)

func newKafkaPublisher(cfg *kafkaclient.Config) *kafkaPublisher {
	return &kafkaPublisher{writer: &kafka.Writer{
		Addr:      kafka.TCP(cfg.Brokers...),
		Topic:     cfg.DeadLetterTopic,
		Transport: cfg.Transport(),
		Balancer:  &kafka.Hash{},
		// Every in-sync replica, like ingest: kafka-go's default is no
		// acknowledgement at all, and the offset is committed after this.
		RequiredAcks: kafka.RequireAll,
		BatchSize:    1000,
		BatchBytes:   deadLetterBatchBytes,
		// Writes are synchronous and per batch; the default 1 s would
		// delay every batch that has a dead letter.
		BatchTimeout: defaultDeadLetterBatchWait,
		WriteTimeout: 10 * time.Second,
	}}
}

func (p *kafkaPublisher) PublishDeadLetters(ctx context.Context, rows []DeadLetterRow) error {
	msgs := make([]kafka.Message, 0, len(rows))
	for _, r := range rows {
		value, err := encodeDeadLetter(r)
		if err != nil {
			return err
		}
		msgs = append(msgs, kafka.Message{Key: deadLetterKey(r), Value: value,
			Headers: []kafka.Header{{Key: "content-type", Value: []byte(DeadLetterContentType)}}})
	}
	if err := p.writer.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publish %d dead letters: %w", len(msgs), err)
	}
	return nil
}

// Close flushes and closes the writer.
func (p *kafkaPublisher) Close() error { return p.writer.Close() }

// unpublishable reports whether a publish failed because of the messages
// themselves, which no retry changes: too large for the writer or the
// topic, or refused as invalid. Anything else (the broker unreachable, a
// leader moving, a timeout) is retried forever.
func unpublishable(err error) bool {
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil && unpublishable(e) {
				return true // the rest is retried when the rows are split
			}
		}
		return false
	}
	var tooLarge kafka.MessageTooLargeError
	return errors.As(err, &tooLarge) || errors.Is(err, kafka.MessageSizeTooLarge) ||
		errors.Is(err, kafka.RecordListTooLarge) || errors.Is(err, kafka.InvalidMessage) ||
		errors.Is(err, kafka.InvalidMessageSize) || errors.Is(err, kafka.InvalidRecord)
}

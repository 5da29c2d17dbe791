package aggregator

import (
	"context"
	"encoding/json"
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
	// RecordOmitted is set when the record was too large to repeat here;
	// the dead_letters table still holds it.
	RecordOmitted bool `json:"record_omitted,omitempty"`
}

// maxDeadLetterRecord bounds the original record repeated on the topic: an
// event close to ingest's 1 MiB limit plus the envelope would exceed the
// broker's message size, and a write that can never succeed would stall the
// partition forever.
const maxDeadLetterRecord = 512 << 10

// DeadLetterContentType is the content-type header of dead-letter records.
const DeadLetterContentType = "application/vnd.tally.dead-letter.v1+json"

func encodeDeadLetter(r DeadLetterRow) ([]byte, error) {
	dl := DeadLetter{
		OrgID: r.OrgID, CustomerID: r.CustomerID, EventID: r.EventID, MeterKey: r.MeterKey,
		Reason: r.Reason, Message: r.Message, Partition: r.Partition, Offset: r.Offset,
	}
	switch {
	case len(r.Payload) > maxDeadLetterRecord:
		dl.RecordOmitted = true
	case json.Valid(r.Payload):
		dl.Record = r.Payload
	default:
		dl.RecordBase64 = r.Payload
	}
	b, err := json.Marshal(dl)
	if err != nil {
		return nil, fmt.Errorf("encode dead letter: %w", err)
	}
	return b, nil
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
		BatchBytes:   1 << 20,
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
		key := r.Key
		if len(key) == 0 {
			key = schemas.RecordKey(r.OrgID, r.CustomerID)
		}
		msgs = append(msgs, kafka.Message{Key: key, Value: value,
			Headers: []kafka.Header{{Key: "content-type", Value: []byte(DeadLetterContentType)}}})
	}
	if err := p.writer.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publish %d dead letters: %w", len(msgs), err)
	}
	return nil
}

// Close flushes and closes the writer.
func (p *kafkaPublisher) Close() error { return p.writer.Close() }

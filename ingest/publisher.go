package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/internal/kafkaclient"
)

// Publisher writes a request's records to Kafka. Publish returns nil only
// when every record was acknowledged; on any error the caller must assume
// that some, all or none were written (a retry is safe because the
// aggregator deduplicates by event id).
type Publisher interface {
	Publish(ctx context.Context, msgs []kafka.Message) error
}

// kafkaPublisher is the one kafka-go Writer of the process. Sharing it
// across requests lets concurrent requests fill the same per-partition
// batches instead of each paying for its own produce round trips.
type kafkaPublisher struct {
	writer    *kafka.Writer
	transport *kafka.Transport
}

var _ Publisher = (*kafkaPublisher)(nil)

func newKafkaPublisher(kc *kafkaclient.Config, cfg Config) *kafkaPublisher {
	transport := kc.Transport()
	return &kafkaPublisher{
		transport: transport,
		writer: &kafka.Writer{
			Addr:  kafka.TCP(kc.Brokers...),
			Topic: kc.Topic,
			// The key is <org>/<customer>: hashing it keeps one customer's
			// events in one partition, in order, which the aggregator's
			// "first version of an event id wins" relies on.
			Balancer: &kafka.Hash{},
			// kafka-go defaults to no acks at all; an event is accepted
			// only once every in-sync replica has it.
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: cfg.KafkaBatchTimeout,
			BatchSize:    cfg.KafkaBatchSize,
			BatchBytes:   cfg.KafkaBatchBytes,
			Compression:  kafka.Lz4,
			Transport:    transport,
			// A typo in the topic name must fail readiness and produce 503s,
			// not create a topic nobody consumes.
			AllowAutoTopicCreation: false,
		},
	}
}

// Publish writes msgs in one WriteMessages call and waits for the acks.
func (p *kafkaPublisher) Publish(ctx context.Context, msgs []kafka.Message) error {
	err := p.writer.WriteMessages(ctx, msgs...)
	if err == nil {
		return nil
	}
	var writeErrs kafka.WriteErrors
	if errors.As(err, &writeErrs) {
		return fmt.Errorf("write to kafka topic %s: %d of %d records not acknowledged: %w",
			p.writer.Topic, writeErrs.Count(), len(msgs), firstError(writeErrs))
	}
	return fmt.Errorf("write %d records to kafka topic %s: %w", len(msgs), p.writer.Topic, err)
}

// writerCloseTimeout bounds the flush at shutdown. Close runs after the
// HTTP server has drained, so every request has had its answer: a record
// still in the writer then belongs to a request already answered 503, and
// giving up on it loses nothing a client was told is accepted. Without the
// bound, kafka-go keeps retrying a dead broker for its MaxAttempts.
const writerCloseTimeout = 2 * time.Second

// errFlushAbandoned is returned by Close when the writer did not flush in
// writerCloseTimeout.
var errFlushAbandoned = errors.New("kafka writer gave up flushing; the records left belong to requests answered 503")

// Close flushes pending batches and closes the connections.
func (p *kafkaPublisher) Close() error {
	done := make(chan error, 1)
	go func() { done <- p.writer.Close() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(writerCloseTimeout):
		err = fmt.Errorf("after %s: %w", writerCloseTimeout, errFlushAbandoned)
	}
	// The Writer closes only transports it created itself.
	p.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("close kafka writer: %w", err)
	}
	return nil
}

func firstError(errs kafka.WriteErrors) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

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
// when every record was acknowledged, and it returns only once the writer
// is done with the records (acknowledged, or given up after its attempts):
// the caller's context ending does not cut the wait short, so that no
// record of a request is written after the request was answered. On any
// error the caller must assume that some, all or none were written (the
// last attempt may have reached the broker unanswered); sending the same
// ids again, unchanged, is safe because the aggregator keeps the first
// version of each.
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
			// Bounded work per batch: the attempts and the backoffs between
			// them fit in ProduceTimeout (Config.kafkaWriteTimeout). kafka-go
			// defaults to 10 attempts of 10 s.
			MaxAttempts:     cfg.KafkaMaxAttempts,
			WriteTimeout:    cfg.kafkaWriteTimeout(),
			WriteBackoffMin: kafkaBackoffMin,
			WriteBackoffMax: kafkaBackoffMax,
			// A typo in the topic name must fail readiness and produce 503s,
			// not create a topic nobody consumes.
			AllowAutoTopicCreation: false,
		},
	}
}

// Publish writes msgs in one WriteMessages call and waits until the
// writer is done with them. WriteMessages returns as soon as its context
// ends, while the writer goes on with the batch: a request answered then
// could be written afterwards (issue 6, defect 5). The context is
// therefore detached; the writer's own attempts bound the wait.
func (p *kafkaPublisher) Publish(ctx context.Context, msgs []kafka.Message) error {
	err := p.writer.WriteMessages(context.WithoutCancel(ctx), msgs...)
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
// HTTP server has drained, and a request is answered only once the writer
// is done with its records, so the writer holds nothing of an answered
// request; only requests cut off by the shutdown timeout can leave records
// behind, and they were never answered 202.
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

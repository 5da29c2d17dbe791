package aggregator

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/internal/kafkaclient"
)

// consumer runs this member's share of the consumer group: one loop per
// assigned partition, each fetching batches, processing them and
// committing their offsets.
type consumer struct {
	cfg     Config
	kafka   *kafkaclient.Config
	proc    *processor
	state   *consumerState
	metrics *metrics
	logger  *slog.Logger
}

// run consumes until ctx is done, then lets the in-flight batches finish
// (until hard is done, when they are abandoned uncommitted) and leaves the
// group, so that the partitions move to another member at once instead of
// after the session timeout.
func (c *consumer) run(ctx, hard context.Context) error {
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                c.cfg.GroupID,
		Brokers:           c.kafka.Brokers,
		Dialer:            c.kafka.Dialer(),
		Topics:            []string{c.kafka.Topic},
		StartOffset:       kafka.FirstOffset, // a new group meters the whole retained topic
		HeartbeatInterval: c.cfg.HeartbeatInterval,
		SessionTimeout:    c.cfg.SessionTimeout,
		RebalanceTimeout:  c.cfg.RebalanceTimeout,
		JoinGroupBackoff:  time.Second,
		// Not WatchPartitionChanges: watchAssignment covers new partitions
		// without its blind spot.
		ErrorLogger: kafkaLogger(c.logger, slog.LevelWarn),
	})
	if err != nil {
		return err
	}
	// Close runs after the last generation's partition loops have drained:
	// closing the group first would end the generation and abandon them.
	defer group.Close()
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The group retries joining on its own (JoinGroupBackoff) and
			// has logged the error; readiness says "not in a generation".
			c.logger.Debug("joining consumer group failed", "group", c.cfg.GroupID, "err", err)
			continue
		}
		if stop := c.runGeneration(ctx, hard, gen); stop {
			return nil
		}
	}
}

// runGeneration runs a loop per assigned partition until the generation
// ends (a rebalance; their uncommitted batches are redelivered to the next
// owner, which is safe by design) or ctx is done. It reports whether ctx is
// done, in which case the generation is still open, its loops drained and
// waiting for the group to close.
func (c *consumer) runGeneration(ctx, hard context.Context, gen *kafka.Generation) (stop bool) {
	assigned := gen.Assignments[c.kafka.Topic]
	c.metrics.rebalances.Inc()
	c.state.startGeneration(gen.ID, assigned)
	defer c.state.endGeneration()
	ids := make([]int, len(assigned))
	for i, a := range assigned {
		ids[i] = a.ID
	}
	c.logger.Info("joined consumer group generation", "group", c.cfg.GroupID, "generation", gen.ID, "partitions", ids)

	// Any function passed to gen.Start that returns ends the generation,
	// so each waits for the generation's end after its work is done; only
	// watchAssignment returns early, to force a rebalance.
	ended := make(chan struct{})
	gen.Start(func(gctx context.Context) {
		defer close(ended)
		c.watchAssignment(ctx, gctx, ids)
	})
	var drained sync.WaitGroup
	for _, a := range assigned {
		drained.Add(1)
		gen.Start(func(gctx context.Context) {
			c.consumePartition(ctx, hard, gctx, gen, a)
			drained.Done()
			<-gctx.Done()
		})
	}
	select {
	case <-ended:
		drained.Wait()
		c.logger.Info("consumer group generation ended", "generation", gen.ID)
		return false
	case <-ctx.Done():
		drained.Wait()
		return true
	}
}

// consumePartition fetches, processes and commits batches of one partition
// until ctx or the generation ends. Identities never span partitions (the
// record key is organization/customer), so partitions are independent and
// run in parallel.
func (c *consumer) consumePartition(ctx, hard, gctx context.Context, gen *kafka.Generation, a kafka.PartitionAssignment) {
	// Fetching stops at shutdown or at the end of the generation.
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	defer context.AfterFunc(gctx, stopFetch)()
	// A batch is abandoned when the generation ends (its commit would be
	// refused) or when the shutdown's drain time is over.
	batchCtx, abandon := context.WithCancel(hard)
	defer abandon()
	defer context.AfterFunc(gctx, abandon)()

	logger := c.logger.With("partition", a.ID)
	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers:       c.kafka.Brokers,
		Topic:         c.kafka.Topic,
		Partition:     a.ID,
		Dialer:        c.kafka.Dialer(),
		MinBytes:      1,
		MaxBytes:      c.cfg.FetchMaxBytes,
		MaxWait:       defaultFetchMaxWait,
		QueueCapacity: defaultPartitionQueueCap,
		ErrorLogger:   kafkaLogger(logger, slog.LevelWarn),
	})
	defer reader.Close()
	start := a.Offset
	if start < 0 {
		start = kafka.FirstOffset // nothing committed yet
	}
	if err := reader.SetOffset(start); err != nil {
		logger.Error("cannot position partition reader", "offset", start, "err", err)
		return
	}
	for {
		batch := c.fetchBatch(fetchCtx, reader, logger)
		if len(batch) == 0 {
			return // fetchCtx is done
		}
		if err := c.handleBatch(batchCtx, gen, a.ID, batch); err != nil {
			logger.Info("batch abandoned uncommitted; it will be redelivered",
				"first_offset", batch[0].Offset, "records", len(batch), "err", err)
			return
		}
		if fetchCtx.Err() != nil {
			return
		}
	}
}

// fetchBatch waits for a first record, then collects records until the
// batch is full or BatchLinger has passed. It returns nil only when ctx is
// done; a batch cut short by ctx is still returned, to be drained.
func (c *consumer) fetchBatch(ctx context.Context, reader *kafka.Reader, logger *slog.Logger) []kafka.Message {
	var first kafka.Message
	for {
		m, err := reader.FetchMessage(ctx)
		if err == nil {
			first = m
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		// The reader retries on its own; it reports errors that persist.
		logger.Warn("fetching records failed", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	batch := make([]kafka.Message, 1, min(c.cfg.BatchSize, 4096))
	batch[0] = first
	linger, cancel := context.WithTimeout(ctx, c.cfg.BatchLinger)
	defer cancel()
	for len(batch) < c.cfg.BatchSize {
		m, err := reader.FetchMessage(linger)
		if err != nil {
			if linger.Err() == nil {
				logger.Warn("fetching records failed", "err", err)
			}
			break // process what we have
		}
		batch = append(batch, m)
	}
	return batch
}

// kafkaLogger adapts kafka-go's printf logging to slog.
func kafkaLogger(logger *slog.Logger, level slog.Level) kafka.Logger {
	return kafka.LoggerFunc(func(format string, args ...any) {
		logger.Log(context.Background(), level, "kafka: "+fmt.Sprintf(format, args...))
	})
}

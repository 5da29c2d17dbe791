package aggregator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/internal/kafkaclient"
)

// consumer runs this member's share of the consumer group: one loop per
// assigned partition, each fetching batches, processing them and
// committing their offsets.
type consumer struct {
	cfg             Config
	kafka           *kafkaclient.Config
	proc            *processor
	state           *consumerState
	metrics         *metrics
	partitionCounts partitionCounts
	// clusterLayout checks the ClickHouse cluster's shard layout
	// (chclient.CheckClusterLayout); nil on one server.
	clusterLayout func(context.Context) error
	logger        *slog.Logger
}

// run consumes until ctx is done, then lets the in-flight batches finish
// (until hard is done, when they are abandoned uncommitted) and leaves the
// group, so that the partitions move to another member at once instead of
// after the session timeout.
func (c *consumer) run(ctx, hard context.Context) error {
	// Readiness refuses such a topic (kafkaclient.Ping) for as long as it
	// stays so; say it once in the log too. Consuming goes on: stopping
	// would only let more records expire unmetered.
	if err := c.kafka.Ping(ctx); errors.Is(err, kafkaclient.ErrUnsafeEventTopic) {
		c.logger.Error("the event topic can delete records before they are metered; readiness stays red until it is fixed", "err", err)
	}
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
	g := newTopicGate()
	gen.Start(func(gctx context.Context) {
		defer close(ended)
		c.watchAssignment(ctx, gctx, gen.MemberID, ids, g)
	})
	var drained sync.WaitGroup
	for _, a := range assigned {
		drained.Add(1)
		gen.Start(func(gctx context.Context) {
			c.consumePartition(ctx, hard, gctx, gen, a, g)
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

// topicGate holds a generation's partition loops until the topic's
// partition count (and on a cluster the shard layout) is verified (open),
// and stops them when either is found changed (halted); see partitions.go.
type topicGate struct {
	open   chan struct{}
	halted context.Context
	halt   context.CancelFunc
	reason atomic.Pointer[string] // the halt reason, stored before halted is done
}

// stop halts the generation's partition loops for reason; only the first
// call of a generation counts. Only watchAssignment calls it.
func (g *topicGate) stop(reason string) {
	if g.halted.Err() == nil {
		g.reason.Store(&reason)
		g.halt()
	}
}

// haltReason is why the gate was stopped.
func (g *topicGate) haltReason() string {
	if r := g.reason.Load(); r != nil {
		return *r
	}
	return haltPartitionCountChanged
}

func newTopicGate() *topicGate {
	halted, halt := context.WithCancel(context.Background())
	return &topicGate{open: make(chan struct{}), halted: halted, halt: halt}
}

// isOpen is only called by watchAssignment, the one goroutine that opens
// the gate.
func (g *topicGate) isOpen() bool {
	select {
	case <-g.open:
		return true
	default:
		return false
	}
}

// consumePartition fetches, processes and commits batches of one partition
// until ctx or the generation ends, or the partition halts (halt.go).
// Identities never span partitions (the record key is
// organization/customer), so partitions are independent and run in
// parallel.
func (c *consumer) consumePartition(ctx, hard, gctx context.Context, gen *kafka.Generation, a kafka.PartitionAssignment, g *topicGate) {
	// Fetching stops at shutdown, at the end of the generation, or when
	// the partition count or the shard layout changed.
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	defer context.AfterFunc(gctx, stopFetch)()
	defer context.AfterFunc(g.halted, stopFetch)()
	// A batch is abandoned when the generation ends (its commit would be
	// refused), when the shutdown's drain time is over, or when the
	// partition count changed (it may hold records of moved keys) or the
	// shard layout did (its rows may go to other shards than earlier
	// copies).
	batchCtx, abandon := context.WithCancel(hard)
	defer abandon()
	defer context.AfterFunc(gctx, abandon)()
	defer context.AfterFunc(g.halted, abandon)()
	defer func() {
		if g.halted.Err() != nil {
			c.state.halt(a.ID, g.haltReason(), nil)
		}
	}()
	select {
	case <-g.open:
	case <-fetchCtx.Done():
		return
	}

	logger := c.logger.With("partition", a.ID)
	// One client for the partition's log-start lookups (position.go).
	transport := c.kafka.Transport()
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(c.kafka.Brokers...), Transport: transport}
	start := a.Offset
	if start >= 0 {
		// A failed lookup is left to the gap and idle checks below.
		if err := c.checkPosition(fetchCtx, client, a.ID, start); err != nil {
			c.haltPosition(err)
			return
		}
	}
	reader := kafka.NewReader(c.readerConfig(a.ID))
	defer reader.Close()
	next := start // the offset the next record must have; negative: unknown
	if start < 0 {
		start = kafka.FirstOffset // nothing committed yet
	}
	if err := reader.SetOffset(start); err != nil {
		logger.Error("cannot position partition reader", "offset", start, "err", err)
		return
	}
	// Waiting for a record may mean the log ends before the position
	// (position.go); next is the position then, since every batch is
	// committed before the next wait.
	f := fetcher{idle: func() bool {
		if next < 0 {
			return false // reading from the log start
		}
		if t := c.beyondLogEnd(fetchCtx, client, a.ID, next); t != nil {
			c.haltLogTruncated(t)
			return true
		}
		return false
	}}
	for {
		batch := c.fetchBatch(fetchCtx, reader, &f, logger)
		if len(batch) == 0 {
			return // fetchCtx is done, or the partition halted
		}
		var loss *offsetOutOfRange
		if i, missing := firstGap(batch, next); i >= 0 {
			var err error
			if loss, err = c.deletedFrom(fetchCtx, client, a.ID, missing); err != nil {
				return // fetchCtx is done
			}
			if loss != nil {
				batch = batch[:i] // what precedes the gap is still metered
			}
		}
		if len(batch) > 0 {
			next = batch[len(batch)-1].Offset + 1
			if err := c.handleBatch(batchCtx, gen, a.ID, batch); err != nil {
				logger.Info("batch abandoned uncommitted; it will be redelivered",
					"first_offset", batch[0].Offset, "records", len(batch), "err", err)
				return
			}
		}
		if loss != nil {
			c.haltOutOfRange(loss)
			return
		}
		if fetchCtx.Err() != nil {
			return
		}
	}
}

// fetcher is a partition's reading state between batches: the record that
// did not fit into the last batch's byte limit starts the next one.
type fetcher struct {
	pending *kafka.Message
	// idle is called after each logEndCheckInterval spent waiting for a
	// first record; true stops the partition.
	idle func() (stop bool)
}

// messageBytes is what a record weighs in a batch's byte limit.
func messageBytes(m kafka.Message) int {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// fetchBatch waits for a first record, then collects records until the
// batch has BatchSize records, the next record would take it over
// BatchMaxBytes (that record starts the next batch), or BatchLinger has
// passed. It returns nil only when ctx is done or f.idle stops it; a
// batch cut short by ctx is still returned, to be drained.
func (c *consumer) fetchBatch(ctx context.Context, reader *kafka.Reader, f *fetcher, logger *slog.Logger) []kafka.Message {
	var first kafka.Message
	if f.pending != nil {
		first, f.pending = *f.pending, nil
	} else {
		for {
			// A Reader keeps a record that a cancelled FetchMessage did
			// not take.
			wait, cancel := context.WithTimeout(ctx, logEndCheckInterval)
			m, err := reader.FetchMessage(wait)
			waited := wait.Err() != nil
			cancel()
			if err == nil {
				first = m
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			if waited { // nothing to read for logEndCheckInterval
				if f.idle != nil && f.idle() {
					return nil
				}
				continue
			}
			// The reader retries on its own, with its own backoff, and
			// queues one error per failed fetch. The pause here only keeps
			// a reader that fails at once from spinning: a pause of a
			// second per error made a partition recover from a fetch
			// outage as slowly as the queued errors drained (measured by
			// the fault suite: readiness back 14-22 s after a 25 s outage).
			logger.Warn("fetching records failed", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(fetchErrorPause):
			}
		}
	}
	batch := make([]kafka.Message, 1, min(c.cfg.BatchSize, 4096))
	batch[0] = first
	// Validate makes BatchMaxBytes at least the largest record, so the
	// first record always fits.
	bytes := messageBytes(first)
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
		if size := messageBytes(m); bytes+size > c.cfg.BatchMaxBytes {
			f.pending = &m
			break
		} else {
			bytes += size
		}
		batch = append(batch, m)
	}
	c.state.safety.batchBytes.Observe(float64(bytes))
	return batch
}

// readerConfig is the Reader of one partition. Its memory is bounded in
// bytes, not only in records: kafka-go streams a fetch response (at most
// FetchMaxBytes, one decompressed record batch at a time) into a queue of
// QueueCapacity records, so the queue holds at most QueueCapacity of the
// largest records. QueueCapacity is FetchMaxBytes / maxRecordBytes (at
// least 1, at most defaultPartitionQueueCap): with the defaults, 1
// record, 1 MiB. See Config for the whole bound.
func (c *consumer) readerConfig(partition int) kafka.ReaderConfig {
	return kafka.ReaderConfig{
		Brokers:       c.kafka.Brokers,
		Topic:         c.kafka.Topic,
		Partition:     partition,
		Dialer:        c.kafka.Dialer(),
		MinBytes:      1,
		MaxBytes:      c.cfg.FetchMaxBytes,
		MaxWait:       defaultFetchMaxWait,
		QueueCapacity: c.cfg.queueCapacity(),
		ErrorLogger:   kafkaLogger(c.logger.With("partition", partition), slog.LevelWarn),
	}
}

// kafkaLogger adapts kafka-go's printf logging to slog.
func kafkaLogger(logger *slog.Logger, level slog.Level) kafka.Logger {
	return kafka.LoggerFunc(func(format string, args ...any) {
		logger.Log(context.Background(), level, "kafka: "+fmt.Sprintf(format, args...))
	})
}

package aggregator

import (
	"context"
	"errors"
	"time"

	"github.com/segmentio/kafka-go"
)

// handleBatch processes a batch and commits its offset: step 9 runs only
// after steps 4, 7 and 8 succeeded, so a committed offset always means the
// batch is durable in ClickHouse and on the dead-letter topic.
func (c *consumer) handleBatch(ctx context.Context, gen *kafka.Generation, partition int, batch []kafka.Message) error {
	start := time.Now()
	ctx = withPartition(ctx, partition) // the Store pins the batch to the partition's session
	last := batch[len(batch)-1]
	c.state.fetched(partition, batch[0].Offset, last.HighWaterMark)
	res, err := c.proc.process(ctx, batch)
	if err != nil {
		return err
	}
	for outcome, n := range res.outcomes {
		c.metrics.events.WithLabelValues(outcome).Add(float64(n))
	}
	for reason, n := range res.deadLetters {
		c.metrics.deadLetters.WithLabelValues(reason).Add(float64(n))
	}

	// 9. Commit the offset of the next record to read.
	next := last.Offset + 1
	if err := c.commit(ctx, gen, partition, next); err != nil {
		// The batch is stored; it is redelivered (which changes nothing)
		// unless a later batch's commit covers it.
		c.metrics.commitErrors.Inc()
		c.logger.Warn("commit failed", "partition", partition, "offset", next, "err", err)
		return nil
	}
	c.metrics.commits.Inc()
	c.state.committed(partition, next)

	// 10. Pipeline latency, from acceptance at ingest to stored and committed.
	now := time.Now()
	for _, t := range res.ingestedAt {
		c.metrics.pipelineLatency.Observe(max(now.Sub(t), 0).Seconds())
	}
	c.metrics.batchDuration.Observe(time.Since(start).Seconds())
	return nil
}

// commitAttempts bounds the retries of a failed commit. A commit that
// keeps failing is left to the next batch, or to redelivery; but without a
// retry an idle partition would keep a stored batch uncommitted and look
// stalled until new records arrive.
const commitAttempts = 3

func (c *consumer) commit(ctx context.Context, gen *kafka.Generation, partition int, offset int64) error {
	var err error
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err = gen.CommitOffsets(map[string]map[int]int64{c.kafka.Topic: {partition: offset}})
		if err == nil || attempt == commitAttempts || generationOver(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
			wait *= 2
		}
	}
}

// generationOver reports errors after which no commit of this generation
// can succeed: the partitions are being handed to their next owner.
func generationOver(err error) bool {
	return errors.Is(err, kafka.RebalanceInProgress) || errors.Is(err, kafka.IllegalGeneration) ||
		errors.Is(err, kafka.UnknownMemberId) || errors.Is(err, kafka.FencedInstanceID)
}

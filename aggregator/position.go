package aggregator

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// Records deleted from the event topic before the group metered them
// (time or size retention that someone set despite readiness, an
// operator's DeleteRecords, a broker that lost data) would be lost
// silently: kafka-go's Reader moves a position before the log start to
// the log start, in its initialization and on OFFSET_OUT_OF_RANGE alike,
// and only logs it. The aggregator checks instead:
//
//   - before positioning a reader at a committed offset, that the log does
//     not start after it;
//   - for every batch, that its offsets follow on from the last record
//     (or the committed offset); a jump is looked up, and is a loss only
//     if the log now starts after the first missing offset (a jump over
//     transaction markers or compacted records is not).
//
// A loss halts the partition (halt.go): the records before the gap are
// processed and committed, nothing after it is, the committed offset
// stays where the gap starts, tally_aggregator_offset_out_of_range_total
// counts it and readiness says what to do. Every later owner of the
// partition finds the same gap, so the alarm survives restarts and
// rebalances until an operator moves the group's offset.
//
// A group without a committed offset starts at the log start (a new
// group, or one whose offsets expired, which `tally all`'s trimming can
// lead to): records deleted before that are not reported, since nothing
// tells whether this group was meant to meter them.

// offsetOutOfRange explains a loss to readiness and the log.
type offsetOutOfRange struct {
	group, topic      string
	partition         int
	position, logHead int64
}

func (e *offsetOutOfRange) Error() string {
	return fmt.Sprintf("partition %d: records from offset %d to %d were deleted from Kafka before they were metered (the log starts at %d); "+
		"consumption of the partition stopped at offset %d. Find what deleted them (retention, DeleteRecords); their events are lost unless "+
		"clients send them again. To go on without them, stop every aggregator and move the group past the gap: "+
		"kafka-consumer-groups.sh --group %s --topic %s:%d --reset-offsets --to-offset %d --execute",
		e.partition, e.position, e.logHead-1, e.logHead, e.position, e.group, e.topic, e.partition, e.logHead)
}

// logStart returns the first offset the broker still holds of partition.
func (c *consumer) logStart(ctx context.Context, client *kafka.Client, partition int) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{c.kafka.Topic: {kafka.FirstOffsetOf(partition)}},
	})
	if err != nil {
		return 0, err
	}
	for _, po := range resp.Topics[c.kafka.Topic] {
		if po.Partition == partition {
			if po.Error != nil {
				return 0, po.Error
			}
			return po.FirstOffset, nil
		}
	}
	return 0, fmt.Errorf("no log start offset for partition %d", partition)
}

// deletedFrom reports whether records from offset on were deleted: the log
// now starts after it. It asks until the broker answers or ctx is done,
// since a gap must be explained before anything after it is processed.
func (c *consumer) deletedFrom(ctx context.Context, client *kafka.Client, partition int, offset int64) (*offsetOutOfRange, error) {
	for {
		head, err := c.logStart(ctx, client, partition)
		if err == nil {
			if head > offset {
				return &offsetOutOfRange{group: c.cfg.GroupID, topic: c.kafka.Topic, partition: partition, position: offset, logHead: head}, nil
			}
			return nil, nil
		}
		c.logger.Warn("cannot read the log start offset", "partition", partition, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// firstGap returns the index of the first record of batch that does not
// follow on from next (the offset expected first; negative: unknown), or
// -1, and the offset expected there.
func firstGap(batch []kafka.Message, next int64) (int, int64) {
	for i, m := range batch {
		if next >= 0 && m.Offset > next {
			return i, next
		}
		next = m.Offset + 1
	}
	return -1, next
}

// haltOutOfRange stops consuming partition because of loss.
func (c *consumer) haltOutOfRange(loss *offsetOutOfRange) {
	c.logger.Error("records deleted before they were metered; the partition is no longer consumed", "partition", loss.partition,
		"committed_offset", loss.position, "log_start", loss.logHead, "explanation", loss.Error())
	c.state.halt(loss.partition, haltOffsetOutOfRange, loss)
}

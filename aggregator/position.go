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
// The log can also end before the committed offset: an unclean leader
// election truncated it, a broker with the only replica lost its disk,
// the topic was deleted and created again under its name. kafka-go's
// Reader then waits, without a word, until the log reaches the offset,
// and every record written below it is never metered (and lag, the high
// watermark minus the position, is 0). So the aggregator also checks
// that the log ends at or after the position: before positioning a
// reader at a committed offset, and whenever a partition has waited
// logEndCheckInterval for a record. A position beyond the log end is
// confirmed by two more reads logEndRecheckDelay apart (a broker's
// answer during a leader change can be stale), then halts the partition
// like a loss (halted reason log_truncated, the same counter). Its limit:
// a log truncated and written past the position again before the check
// confirms it (about 9 s of waiting: logEndCheckInterval plus the
// confirmation), or while no member holds the partition, is not seen;
// under steady traffic a shallow truncation refills that fast. Kafka's
// own remedy, validating the position's leader epoch (KIP-320), is not
// available in kafka-go (franz-go's consumer has it). The prevention is
// the topic's settings: with unclean.leader.election.enable=false (which
// readiness requires, kafkaclient), a replication factor of 3 and
// min.insync.replicas of 2 (readiness refuses an event topic with
// replicas and min.insync.replicas below 2), Kafka does not truncate
// acknowledged records.
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

// logTruncated explains a position beyond the log end to readiness and
// the log.
type logTruncated struct {
	group, topic     string
	partition        int
	position, logEnd int64
}

func (e *logTruncated) Error() string {
	return fmt.Sprintf("partition %d: the group's position, offset %d, is beyond the end of the log, which ends at offset %d: "+
		"the log was truncated (an unclean leader election, a broker that lost its data) or the topic was deleted and created again. "+
		"Records written at offsets %d to %d would never be metered, so consumption of the partition stopped at offset %d. "+
		"Find out what happened to the log. To meter what it holds, stop every aggregator and move the group to the log start "+
		"(records metered before are recognised by their ids and not counted again): "+
		"kafka-consumer-groups.sh --group %s --topic %s:%d --reset-offsets --to-earliest --execute",
		e.partition, e.position, e.logEnd, e.logEnd, e.position-1, e.position, e.group, e.topic, e.partition)
}

const (
	// logEndCheckInterval is how long a partition waits for a record
	// before it checks that its position is not beyond the log end.
	logEndCheckInterval = 5 * time.Second
	// logEndRecheckDelay separates the reads that confirm a position
	// beyond the log end.
	logEndRecheckDelay = 2 * time.Second
)

// logBounds returns the first offset the broker still holds of partition
// and the log end (the high watermark: the offset of the next record).
func (c *consumer) logBounds(ctx context.Context, client *kafka.Client, partition int) (start, end int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{c.kafka.Topic: {kafka.FirstOffsetOf(partition), kafka.LastOffsetOf(partition)}},
	})
	if err != nil {
		return 0, 0, err
	}
	for _, po := range resp.Topics[c.kafka.Topic] {
		if po.Partition == partition {
			if po.Error != nil {
				return 0, 0, po.Error
			}
			return po.FirstOffset, po.LastOffset, nil
		}
	}
	return 0, 0, fmt.Errorf("no log offsets for partition %d", partition)
}

// logStart returns the first offset the broker still holds of partition.
func (c *consumer) logStart(ctx context.Context, client *kafka.Client, partition int) (int64, error) {
	start, _, err := c.logBounds(ctx, client, partition)
	return start, err
}

// checkPosition is the check before a reader is positioned at the
// committed offset: it returns an *offsetOutOfRange if the log starts
// after offset, a *logTruncated if it ends before it (confirmed), or nil,
// also when the broker does not answer (the gap check and the idle check
// look again).
func (c *consumer) checkPosition(ctx context.Context, client *kafka.Client, partition int, offset int64) error {
	head, end, err := c.logBounds(ctx, client, partition)
	switch {
	case err != nil:
		c.logger.Warn("cannot read the log offsets", "partition", partition, "err", err)
		return nil
	case head > offset:
		return &offsetOutOfRange{group: c.cfg.GroupID, topic: c.kafka.Topic, partition: partition, position: offset, logHead: head}
	case end < offset:
		if t := c.beyondLogEnd(ctx, client, partition, offset); t != nil {
			return t
		}
	}
	return nil
}

// beyondLogEnd returns a *logTruncated if the log of partition ends
// before offset in three reads, logEndRecheckDelay apart, or nil (also if
// a read fails or ctx ends). A commit is never beyond the high watermark
// it was fetched below, so one low answer is either truncation or a
// stale broker; a broker that stays low is taken at its word.
func (c *consumer) beyondLogEnd(ctx context.Context, client *kafka.Client, partition int, offset int64) *logTruncated {
	var end int64
	for i := range 3 {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(logEndRecheckDelay):
			}
		}
		var err error
		if _, end, err = c.logBounds(ctx, client, partition); err != nil {
			c.logger.Debug("cannot read the log end", "partition", partition, "err", err)
			return nil
		}
		if end >= offset {
			return nil
		}
	}
	return &logTruncated{group: c.cfg.GroupID, topic: c.kafka.Topic, partition: partition, position: offset, logEnd: end}
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

// haltLogTruncated stops consuming partition because its position is
// beyond the log end.
func (c *consumer) haltLogTruncated(t *logTruncated) {
	c.logger.Error("the log ends before the group's position; the partition is no longer consumed", "partition", t.partition,
		"position", t.position, "log_end", t.logEnd, "explanation", t.Error())
	c.state.halt(t.partition, haltLogTruncated, t)
}

// haltPosition halts partition for what checkPosition found.
func (c *consumer) haltPosition(err error) {
	switch e := err.(type) {
	case *offsetOutOfRange:
		c.haltOutOfRange(e)
	case *logTruncated:
		c.haltLogTruncated(e)
	}
}

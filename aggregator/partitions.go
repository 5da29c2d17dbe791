package aggregator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/chclient"
)

// Adding partitions to the event topic changes which partition a key
// (organization and customer) hashes to. Versions of one identity could
// then sit in two partitions consumed in parallel, both batches would find
// no stored first version, and both would be counted. Tally refuses the
// change rather than guessing: the first aggregator to see the topic
// records its partition count, and every member compares the topic's
// count with the recorded one when a generation starts and on every
// assignment check (assignment.go). On a difference each member stops
// consuming every partition it holds (an in-flight batch is abandoned
// uncommitted), readiness explains, and the halted_partitions and
// event_topic_partitions metrics show it, across restarts, until an
// operator records the new count (README, "Scaling the aggregator").
//
// On a ClickHouse cluster the shard layout (the shards of remote_servers
// and their weights) routes identities the same way: a Distributed table
// sends a row to the shard its organization and customer hash to, and a
// changed layout sends customers to other shards, where a redelivered
// batch or a backfill redone would store a second copy of their readings
// that FINAL, folding per shard, counts too. The services refuse to start
// on a layout other than the accepted one (chclient.CheckClusterLayout),
// but ClickHouse applies an edited remote_servers without a restart, so
// the same checks compare the layout too and halt on a difference, with
// their own reason, until the layout is accepted or restored.
//
// Limits: the count is recorded when an aggregator first sees the topic,
// so partitions added before that (for example while only ingest ran) go
// unnoticed; and a member notices a change within one assignment check
// (assignmentCheckInterval), while ingest starts writing to new partitions
// once its producer refreshes metadata. Records consumed in that window
// are the window's risk; every later record waits.

// partitionCounts keeps the accepted partition count of event topics.
type partitionCounts interface {
	// accepted returns the accepted count of topic; ok is false if none
	// was recorded yet.
	accepted(ctx context.Context, topic string) (n int, ok bool, err error)
	record(ctx context.Context, topic string, n int) error
}

// partitionCountStore keeps them in ClickHouse's event_topic_partitions
// (schemas/clickhouse/0011), next to the events whose identities the count
// protects. The latest recorded_at wins, which lets an operator accept a
// new count with one INSERT. It is not behind the Store interface: it is
// read at the start of a generation and every few seconds, never per
// batch, and needs no retry wrapper (a failed check is repeated).
type partitionCountStore struct {
	conn driver.Conn
}

var _ partitionCounts = (*partitionCountStore)(nil)

// accepted reads the accepted partition count of topic; ok is false when
// none is recorded. On a cluster it reads without select_sequential_consistency: an
// operator's accepting INSERT from clickhouse-client carries no insert
// quorum, and a sequentially consistent read would hide it for good
// (chclient.WithoutSequentialConsistency). On one server the setting
// changes nothing.
func (s *partitionCountStore) accepted(ctx context.Context, topic string) (int, bool, error) {
	ctx = chclient.WithoutSequentialConsistency(ctx)
	rows, err := s.conn.Query(ctx, "SELECT argMax(partitions, recorded_at), count() FROM event_topic_partitions WHERE topic = ?", topic)
	if err != nil {
		return 0, false, fmt.Errorf("read event_topic_partitions: %w", err)
	}
	defer rows.Close()
	var n uint32
	var rowCount uint64
	if rows.Next() {
		if err := rows.Scan(&n, &rowCount); err != nil {
			return 0, false, fmt.Errorf("read event_topic_partitions: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, false, fmt.Errorf("read event_topic_partitions: %w", err)
	}
	return int(n), rowCount > 0, nil
}

func (s *partitionCountStore) record(ctx context.Context, topic string, n int) error {
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO event_topic_partitions (topic, partitions, recorded_at)")
	if err != nil {
		return fmt.Errorf("record the partition count: %w", err)
	}
	if err := batch.Append(topic, uint32(n), time.Now().UTC()); err != nil {
		_ = batch.Abort()
		return fmt.Errorf("record the partition count: %w", err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("record the partition count: %w", err)
	}
	return nil
}

// topicHaltCause is a difference that halts every partition this member
// holds: partitionCountChanged or clusterLayoutChanged.
type topicHaltCause interface {
	error
	haltReason() string
}

// partitionCountChanged is the explanation readiness gives.
type partitionCountChanged struct {
	topic             string
	recorded, current int
}

func (e *partitionCountChanged) Error() string {
	return fmt.Sprintf("the event topic %s has %d partitions, but %d were recorded when Tally first consumed it: "+
		"records are keyed by organization and customer, so a changed count moves customers to other partitions, "+
		"where two versions of one event could both be counted; consumption is stopped. "+
		"See the README, \"Scaling the aggregator\", to accept the new count", e.topic, e.current, e.recorded)
}

func (e *partitionCountChanged) haltReason() string { return haltPartitionCountChanged }

// clusterLayoutChanged is the explanation readiness gives when the
// ClickHouse cluster's shard layout differs from the accepted one; err,
// from chclient.CheckClusterLayout, names both and how to accept one.
type clusterLayoutChanged struct{ err error }

func (e *clusterLayoutChanged) Error() string {
	return fmt.Sprintf("the ClickHouse cluster's shard layout is not the accepted one; consumption is stopped until it is: %v", e.err)
}

func (e *clusterLayoutChanged) Unwrap() error { return e.err }

func (e *clusterLayoutChanged) haltReason() string { return haltClusterLayoutChanged }

// verifyClusterLayout compares the ClickHouse cluster's shard layout with
// the accepted one. It returns a *clusterLayoutChanged if they differ,
// another error if it could not tell, and nil on one server, where there
// is nothing to compare.
func (c *consumer) verifyClusterLayout(ctx context.Context) error {
	if c.clusterLayout == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := c.clusterLayout(ctx)
	switch {
	case errors.Is(err, chclient.ErrClusterUnfit):
		return &clusterLayoutChanged{err: err}
	case err != nil:
		return fmt.Errorf("cannot verify the ClickHouse cluster's shard layout: %w", err)
	}
	return nil
}

// verifyPartitionCount compares the topic's current partition count with
// the accepted one, recording current if there is none yet. It returns a
// *partitionCountChanged if they differ, another error if it could not
// tell.
func (c *consumer) verifyPartitionCount(ctx context.Context, current int) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c.state.safety.topicPartitions.WithLabelValues("current").Set(float64(current))
	n, ok, err := c.partitionCounts.accepted(ctx, c.kafka.Topic)
	if err != nil {
		return err
	}
	if !ok {
		if err := c.partitionCounts.record(ctx, c.kafka.Topic, current); err != nil {
			return err
		}
		c.logger.Info("recorded the event topic's partition count; a different count later stops consumption",
			"topic", c.kafka.Topic, "partitions", current)
		n = current
	}
	c.state.safety.topicPartitions.WithLabelValues("recorded").Set(float64(n))
	if n != current {
		return &partitionCountChanged{topic: c.kafka.Topic, recorded: n, current: current}
	}
	return nil
}

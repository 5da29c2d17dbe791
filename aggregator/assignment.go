package aggregator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// assignmentCheckInterval is how often a member checks that every
// partition of the topic has an owner.
const assignmentCheckInterval = 5 * time.Second

// watchAssignment returns when the generation ends, or when the group is
// stable but some partitions of the topic belong to no member, which ends
// the generation and so makes the group rebalance over the partitions that
// exist now.
//
// kafka-go's own partition watcher compares partition counts with the
// count it read when the generation started, not with the count the
// assignment was computed from: a topic created (or grown) between the two
// leaves its partitions unowned for good, every member idle and nothing
// consumed. Asking the coordinator who owns what has no such window, and
// also covers partitions added later.
//
// It also guards the topic's partition count (partitions.go): it opens
// the generation's gate once the count matches the recorded one, halts
// the partition loops when it stops matching, and ends the generation
// when a halted count is accepted again, so that consumption restarts in
// the next one.
//
// On the same tick it reads the high watermarks of the partitions this
// member holds, so that lag (and with it the stall check of readiness)
// tracks what the broker has, not only what this member managed to fetch:
// a member whose fetches keep failing then shows growing lag and turns
// not ready instead of looking idle.
func (c *consumer) watchAssignment(ctx, gctx context.Context, assigned []int, g *topicGate) {
	// One client for the generation: a Transport keeps its connections
	// (and goroutines) until closed.
	transport := c.kafka.Transport()
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(c.kafka.Brokers...), Transport: transport}
	// The partition loops wait for the first answer (ClickHouse down at
	// start: no answer); ask again every second until there is one.
	for !c.guardPartitionCount(gctx, client, g) {
		select {
		case <-gctx.Done():
			return
		case <-time.After(time.Second):
		}
		c.refreshHighWater(gctx, client, assigned)
	}
	ticker := time.NewTicker(assignmentCheckInterval)
	defer ticker.Stop()
	suspicious := 0
	for {
		select {
		case <-gctx.Done():
			return
		case <-ticker.C:
		}
		if ctx.Err() != nil {
			continue // shutting down: the group is about to be left anyway
		}
		c.refreshHighWater(gctx, client, assigned)
		c.guardPartitionCount(gctx, client, g)
		if g.halted.Err() != nil && c.state.topicHalted() == nil {
			c.logger.Info("the event topic's partition count was accepted; rejoining to consume again")
			return
		}
		unowned, err := c.unownedPartitions(gctx, client)
		switch {
		case err != nil:
			c.logger.Debug("cannot check the group's assignment", "err", err)
			continue
		case len(unowned) == 0:
			suspicious = 0
			continue
		}
		// Twice in a row, so that a group caught between its sync and the
		// members' first heartbeats is not rebalanced for nothing.
		if suspicious++; suspicious >= 2 {
			c.logger.Warn("partitions have no owner in the consumer group; rejoining to rebalance",
				"group", c.cfg.GroupID, "partitions", unowned)
			return
		}
	}
}

// guardPartitionCount compares the topic's partition count with the
// recorded one, opening the gate on a match and halting the generation on
// a difference. It reports whether it got an answer.
func (c *consumer) guardPartitionCount(ctx context.Context, client *kafka.Client, g *topicGate) bool {
	partitions, err := c.topicPartitions(ctx, client)
	if err == nil {
		err = c.verifyPartitionCount(ctx, len(partitions))
	}
	var changed *partitionCountChanged
	switch {
	case errors.As(err, &changed):
		if c.state.topicHalted() == nil || g.halted.Err() == nil {
			c.logger.Error("the event topic's partition count changed; consumption stopped", "topic", c.kafka.Topic,
				"recorded", changed.recorded, "current", changed.current, "explanation", changed.Error())
		}
		c.state.setTopicUnverified(nil)
		c.state.setTopicHalt(changed)
		g.halt()
		return true
	case err != nil && g.isOpen():
		// Verified for this generation already: the next tick asks again.
		c.logger.Debug("cannot verify the event topic's partition count", "err", err)
		return false
	case err != nil:
		err = fmt.Errorf("cannot verify the event topic's partition count: %w", err)
		if c.state.setTopicUnverified(err) {
			c.logger.Warn("consumption waits until the event topic's partition count is verified", "err", err)
		}
		return false
	}
	c.state.setTopicUnverified(nil)
	c.state.setTopicHalt(nil)
	if !g.isOpen() && g.halted.Err() == nil {
		close(g.open)
	}
	return true
}

// topicPartitions lists the partitions of the event topic.
func (c *consumer) topicPartitions(ctx context.Context, client *kafka.Client) ([]int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{c.kafka.Topic}})
	if err != nil {
		return nil, err
	}
	for _, t := range meta.Topics {
		if t.Name == c.kafka.Topic {
			if t.Error != nil {
				return nil, t.Error
			}
			partitions := make([]int, 0, len(t.Partitions))
			for _, p := range t.Partitions {
				partitions = append(partitions, p.ID)
			}
			if len(partitions) == 0 {
				return nil, fmt.Errorf("kafka topic %s has no partitions", c.kafka.Topic)
			}
			return partitions, nil
		}
	}
	return nil, fmt.Errorf("kafka topic %s does not exist", c.kafka.Topic)
}

// unownedPartitions lists the topic's partitions that no member of the
// stable group holds. It returns nothing while the group is rebalancing.
func (c *consumer) unownedPartitions(ctx context.Context, client *kafka.Client) ([]int, error) {
	partitions, err := c.topicPartitions(ctx, client)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// Group state lives on the group's coordinator, not on any broker.
	coord, err := client.FindCoordinator(ctx, &kafka.FindCoordinatorRequest{Key: c.cfg.GroupID, KeyType: kafka.CoordinatorKeyTypeConsumer})
	if err != nil {
		return nil, err
	}
	if coord.Error != nil {
		return nil, fmt.Errorf("find coordinator: %w", coord.Error)
	}
	addr := kafka.TCP(net.JoinHostPort(coord.Coordinator.Host, strconv.Itoa(coord.Coordinator.Port)))
	groups, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{Addr: addr, GroupIDs: []string{c.cfg.GroupID}})
	if err != nil {
		return nil, err
	}
	owned := map[int]bool{}
	for _, g := range groups.Groups {
		if g.Error != nil {
			return nil, fmt.Errorf("describe group: %w", g.Error)
		}
		if g.GroupState != "Stable" {
			return nil, nil
		}
		for _, m := range g.Members {
			for _, t := range m.MemberAssignments.Topics {
				if t.Topic == c.kafka.Topic {
					for _, p := range t.Partitions {
						owned[p] = true
					}
				}
			}
		}
	}
	var unowned []int
	for _, p := range partitions {
		if !owned[p] {
			unowned = append(unowned, p)
		}
	}
	slices.Sort(unowned)
	return unowned, nil
}

// refreshHighWater records the broker's log start and high watermark of
// each partition this member holds. A failure is left to the next tick.
func (c *consumer) refreshHighWater(ctx context.Context, client *kafka.Client, assigned []int) {
	if len(assigned) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	requests := make([]kafka.OffsetRequest, 0, 2*len(assigned))
	for _, p := range assigned {
		requests = append(requests, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{c.kafka.Topic: requests}})
	if err != nil {
		c.logger.Debug("cannot read high watermarks", "err", err)
		return
	}
	for _, po := range resp.Topics[c.kafka.Topic] {
		if po.Error == nil {
			c.state.observeOffsets(po.Partition, po.FirstOffset, po.LastOffset)
		}
	}
}

package aggregator

import (
	"context"
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
// On the same tick it reads the high watermarks of the partitions this
// member holds, so that lag (and with it the stall check of readiness)
// tracks what the broker has, not only what this member managed to fetch:
// a member whose fetches keep failing then shows growing lag and turns
// not ready instead of looking idle.
func (c *consumer) watchAssignment(ctx, gctx context.Context, assigned []int) {
	ticker := time.NewTicker(assignmentCheckInterval)
	defer ticker.Stop()
	// One client for the generation: a Transport keeps its connections
	// (and goroutines) until closed.
	transport := c.kafka.Transport()
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(c.kafka.Brokers...), Transport: transport}
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

// unownedPartitions lists the topic's partitions that no member of the
// stable group holds. It returns nothing while the group is rebalancing.
func (c *consumer) unownedPartitions(ctx context.Context, client *kafka.Client) ([]int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{c.kafka.Topic}})
	if err != nil {
		return nil, err
	}
	var partitions []int
	for _, t := range meta.Topics {
		if t.Name == c.kafka.Topic && t.Error == nil {
			for _, p := range t.Partitions {
				partitions = append(partitions, p.ID)
			}
		}
	}
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

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
// It also compares what the coordinator says this member holds with what
// it consumes: a member the coordinator no longer lists, or lists with
// other partitions, while it still consumes its old ones (OpenMeter's sink
// once lost its assignment and reported healthy for 16 hours) ends the
// generation too, counted in tally_aggregator_assignment_lost_total, and
// rejoins.
//
// It also guards the topic's partition count and, on a ClickHouse
// cluster, the shard layout (partitions.go): it opens the generation's
// gate once both match the accepted ones, halts the partition loops when
// either stops matching, and ends the generation when what halted them is
// accepted (or restored) again, so that consumption restarts in the next
// one.
//
// On the same tick it reads the high watermarks of the partitions this
// member holds, so that lag (and with it the stall check of readiness)
// tracks what the broker has, not only what this member managed to fetch:
// a member whose fetches keep failing then shows growing lag and turns
// not ready instead of looking idle.
func (c *consumer) watchAssignment(ctx, gctx context.Context, memberID string, assigned []int, g *topicGate) {
	// One client for the generation: a Transport keeps its connections
	// (and goroutines) until closed.
	transport := c.kafka.Transport()
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(c.kafka.Brokers...), Transport: transport}
	// The partition loops wait for the first answer (ClickHouse down at
	// start: no answer); ask again every second until there is one.
	for !c.guardRouting(gctx, client, g) {
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
		c.guardRouting(gctx, client, g)
		if g.halted.Err() != nil && c.state.topicHalted() == nil {
			c.logger.Info("what halted consumption matches again (the event topic's partition count or the cluster's shard layout was accepted); rejoining to consume again",
				"reason", g.haltReason())
			return
		}
		view, err := c.describeGroup(gctx, client, memberID)
		if err != nil {
			c.logger.Debug("cannot check the group's assignment", "err", err)
			continue
		}
		unowned, lost := view.problems(assigned)
		if len(unowned) == 0 && !lost {
			suspicious = 0
			continue
		}
		// Twice in a row, so that a group caught between its sync and the
		// members' first heartbeats is not rebalanced for nothing.
		if suspicious++; suspicious < 2 {
			continue
		}
		if lost {
			c.state.safety.assignmentLost.Inc()
			c.logger.Warn("the coordinator no longer assigns this member what it consumes; rejoining",
				"group", c.cfg.GroupID, "member", memberID, "consuming", assigned, "coordinator_says", view.mine, "listed", view.member)
		} else {
			c.logger.Warn("partitions have no owner in the consumer group; rejoining to rebalance",
				"group", c.cfg.GroupID, "partitions", unowned)
		}
		return
	}
}

// groupView is what the coordinator says about the stable group.
type groupView struct {
	stable     bool
	partitions []int // of the topic
	owned      map[int]bool
	member     bool  // this member is listed
	mine       []int // what it is assigned, sorted
}

// problems compares the view with the partitions this member consumes:
// partitions nobody owns, and whether this member's assignment is lost.
// A group that is not stable (rebalancing) has none.
func (v groupView) problems(assigned []int) (unowned []int, lost bool) {
	if !v.stable {
		return nil, false
	}
	for _, p := range v.partitions {
		if !v.owned[p] {
			unowned = append(unowned, p)
		}
	}
	consuming := slices.Sorted(slices.Values(assigned))
	return unowned, !v.member || !slices.Equal(v.mine, consuming)
}

// guardRouting compares the topic's partition count with the recorded
// one and, on a ClickHouse cluster, the shard layout with the accepted one
// (partitions.go), opening the gate when both match and halting the
// generation on a difference. It reports whether it got an answer.
func (c *consumer) guardRouting(ctx context.Context, client *kafka.Client, g *topicGate) bool {
	err := c.verifyRouting(ctx, client)
	var changed topicHaltCause
	switch {
	case errors.As(err, &changed):
		if c.state.topicHalted() == nil || g.halted.Err() == nil {
			msg := "the event topic's partition count changed; consumption stopped"
			if changed.haltReason() == haltClusterLayoutChanged {
				msg = "the ClickHouse cluster's shard layout changed; consumption stopped"
			}
			c.logger.Error(msg, "topic", c.kafka.Topic, "reason", changed.haltReason(), "explanation", changed.Error())
		}
		c.state.setTopicUnverified(nil)
		c.state.setTopicHalt(changed)
		g.stop(changed.haltReason())
		return true
	case err != nil && g.isOpen():
		// Verified for this generation already: the next tick asks again.
		c.logger.Debug("cannot verify what routes identities", "err", err)
		return false
	case err != nil:
		if c.state.setTopicUnverified(err) {
			c.logger.Warn("consumption waits until the event topic's partition count (and the cluster's shard layout) is verified", "err", err)
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

// verifyRouting checks the topic's partition count, then the cluster's
// shard layout: a *partitionCountChanged or *clusterLayoutChanged when one
// differs, another error when one could not be compared.
func (c *consumer) verifyRouting(ctx context.Context, client *kafka.Client) error {
	partitions, err := c.topicPartitions(ctx, client)
	if err == nil {
		err = c.verifyPartitionCount(ctx, len(partitions))
	}
	var changed *partitionCountChanged
	if errors.As(err, &changed) {
		return err
	}
	if err != nil {
		return fmt.Errorf("cannot verify the event topic's partition count: %w", err)
	}
	return c.verifyClusterLayout(ctx)
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

// describeGroup asks the group's coordinator who holds what.
func (c *consumer) describeGroup(ctx context.Context, client *kafka.Client, memberID string) (groupView, error) {
	var view groupView
	partitions, err := c.topicPartitions(ctx, client)
	if err != nil {
		return view, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// Group state lives on the group's coordinator, not on any broker.
	coord, err := client.FindCoordinator(ctx, &kafka.FindCoordinatorRequest{Key: c.cfg.GroupID, KeyType: kafka.CoordinatorKeyTypeConsumer})
	if err != nil {
		return view, err
	}
	if coord.Error != nil {
		return view, fmt.Errorf("find coordinator: %w", coord.Error)
	}
	addr := kafka.TCP(net.JoinHostPort(coord.Coordinator.Host, strconv.Itoa(coord.Coordinator.Port)))
	groups, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{Addr: addr, GroupIDs: []string{c.cfg.GroupID}})
	if err != nil {
		return view, err
	}
	view = groupView{stable: true, partitions: partitions, owned: map[int]bool{}}
	for _, g := range groups.Groups {
		if g.Error != nil {
			return groupView{}, fmt.Errorf("describe group: %w", g.Error)
		}
		if g.GroupState != "Stable" {
			return groupView{}, nil
		}
		for _, m := range g.Members {
			if m.MemberID == memberID {
				view.member = true
			}
			for _, t := range m.MemberAssignments.Topics {
				if t.Topic != c.kafka.Topic {
					continue
				}
				for _, p := range t.Partitions {
					view.owned[p] = true
					if m.MemberID == memberID {
						view.mine = append(view.mine, p)
					}
				}
			}
		}
	}
	slices.Sort(view.mine)
	return view, nil
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

package chclient

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// A Distributed table sends a row to the shard its key (a hash of
// organization and customer) picks modulo the total weight of the shards
// in the server's remote_servers, in the order of the shards there. Adding
// a shard or changing a weight sends most identities to another shard than
// the one holding their rows: a redelivered batch, a backfill redone or a
// copy migration would then store a second copy of their events and
// readings there, and FINAL, which folds duplicates per shard only, would
// count both, for good. Tally refuses the change rather than guessing, as
// it does for the event topic's partition count (aggregator/partitions.go):
// the first service to start on a migrated cluster records the cluster's
// layout (the number of shards and their weights) in cluster_layout
// (schemas/clickhouse/0024), and every service compares the cluster's
// current layout with the accepted one (the row with the latest
// recorded_at) when it opens its connection (CheckCluster), refusing to
// start on a difference until an operator who has re-sharded the data
// accepts the new layout by inserting a row (SCALING.md).
//
// Limits: the layout is the one of the server the service reaches
// (remote_servers can differ between servers while a change is rolled
// out); CheckCluster checks it at start only, while ClickHouse applies a
// changed remote_servers without a restart (CheckClusterLayout can be
// called again); and reordering shards, or swapping a shard's servers for
// another shard's, keeps the count and the weights.

// clusterLayout is what routes a row of a Distributed table to a shard.
type clusterLayout struct {
	shards  uint32
	weights []uint32 // of the shards in order (shard_num)
}

func (l clusterLayout) equal(o clusterLayout) bool {
	return l.shards == o.shards && slices.Equal(l.weights, o.weights)
}

func (l clusterLayout) String() string {
	return fmt.Sprintf("%d shards (weights %s)", l.shards, l.weightList())
}

func (l clusterLayout) weightList() string {
	w := make([]string, len(l.weights))
	for i, n := range l.weights {
		w[i] = strconv.FormatUint(uint64(n), 10)
	}
	return strings.Join(w, ", ")
}

// CheckClusterLayout compares the layout of cfg's cluster on the server
// conn reaches with the accepted one in cluster_layout, recording the
// current one when none is. It returns an error wrapping ErrClusterUnfit
// when they differ, another one when it could not tell. CheckCluster
// calls it at start; ClickHouse applies a changed remote_servers without
// a restart, so a process that writes (the aggregator) can call it again
// every few seconds, as it checks the partition count, and stop writing on
// ErrClusterUnfit.
func CheckClusterLayout(ctx context.Context, conn driver.Conn, cfg Config) error {
	current, err := currentLayout(ctx, conn, cfg.Cluster)
	if err != nil {
		return err
	}
	accepted, at, ok, err := acceptedLayout(ctx, conn, cfg.Cluster)
	if isUnknownTable(err) {
		// The migrations have not created cluster_layout yet (a service
		// started before them, or on a store migrated by an older
		// version): nothing to compare with. The migration creates it,
		// and the next start records the layout.
		return nil
	}
	if err != nil {
		return err
	}
	if !ok {
		// No accepted layout. On a new cluster that is the first start;
		// on one that holds events it is not: the row lives on one shard
		// (cityHash64(cluster)), and a remote_servers that lost that shard
		// would find none and accept itself, sending the lost shard's
		// customers to the others. Then an operator decides.
		stored, err := storesEvents(ctx, conn)
		if err != nil {
			return err
		}
		if stored {
			return fmt.Errorf("%w: cluster %s has %s, and no accepted layout is found in %s.cluster_layout although events are stored: "+
				"the shard holding the accepted layout may be missing from remote_servers (restore it), or the layout was never recorded. "+
				"If %s is the layout every stored row was written with, accept it: %s",
				ErrClusterUnfit, cfg.Cluster, current, cfg.Database, current, acceptStatement(cfg, current))
		}
		if err := RetryTransient(ctx, func() error { return recordLayout(ctx, conn, cfg.Cluster, current) }); err != nil {
			return err
		}
		// Read it back: two services starting at once on servers whose
		// remote_servers differ record two layouts, and the later one wins.
		if accepted, at, ok, err = acceptedLayout(ctx, conn, cfg.Cluster); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("read cluster_layout: the layout just recorded is not there")
		}
	}
	if accepted.equal(current) {
		return nil
	}
	return fmt.Errorf("%w: cluster %s has %s in the remote_servers of the server reached, but %s were accepted "+
		"(%s.cluster_layout, recorded %s UTC): a Distributed table sends a row to the shard its organization and customer hash to, "+
		"modulo the shards' total weight, so the change sends existing customers to other shards, where a redelivered batch, "+
		"a backfill redone or a copy would store their events and readings a second time, and both copies would be counted "+
		"(FINAL folds duplicates per shard only). Restore the accepted remote_servers; or, after re-sharding the data for the new layout "+
		"with the aggregators stopped (SCALING.md), accept it: %s",
		ErrClusterUnfit, cfg.Cluster, current, accepted, cfg.Database, at.UTC().Format(time.DateTime), acceptStatement(cfg, current))
}

// acceptStatement is the command that accepts l as cfg's layout: with
// the cluster connections' quorum and synchronously, so that the row is
// on every replica of its shard when the command returns.
func acceptStatement(cfg Config, l clusterLayout) string {
	quorum := ""
	if cfg.InsertQuorum > 0 {
		quorum = fmt.Sprintf(" --insert_quorum=%d", cfg.InsertQuorum)
	}
	return fmt.Sprintf("clickhouse-client --insert_distributed_sync=1%s --query \"INSERT INTO %s.cluster_layout (cluster, shards, weights, recorded_at) VALUES ('%s', %d, [%s], now())\"",
		quorum, cfg.Database, cfg.Cluster, l.shards, l.weightList())
}

// storesEvents tells whether the database holds any event.
func storesEvents(ctx context.Context, conn driver.Conn) (bool, error) {
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM (SELECT 1 FROM events LIMIT 1)").Scan(&n); err != nil {
		if isUnknownTable(err) {
			return false, nil
		}
		return false, fmt.Errorf("read events: %w", err)
	}
	return n > 0, nil
}

// currentLayout reads the layout of cluster in the system.clusters of the
// server conn reaches.
func currentLayout(ctx context.Context, conn driver.Conn, cluster string) (clusterLayout, error) {
	weights, err := ShardWeights(ctx, conn, cluster)
	if err != nil {
		return clusterLayout{}, err
	}
	return clusterLayout{shards: uint32(len(weights)), weights: weights}, nil
}

// ShardWeights returns the weight of each shard of cluster, in shard
// order, as the system.clusters of the server conn reaches lists them:
// what a Distributed table over the cluster routes by (a row's key modulo
// the total weight, each shard taking as many slots as its weight).
func ShardWeights(ctx context.Context, conn driver.Conn, cluster string) ([]uint32, error) {
	rows, err := conn.Query(ctx, `SELECT shard_num, any(shard_weight) FROM system.clusters
		WHERE cluster = ? GROUP BY shard_num ORDER BY shard_num`, cluster)
	if err != nil {
		return nil, fmt.Errorf("read system.clusters: %w", err)
	}
	defer rows.Close()
	var weights []uint32
	for rows.Next() {
		var shard, weight uint32
		if err := rows.Scan(&shard, &weight); err != nil {
			return nil, fmt.Errorf("read system.clusters: %w", err)
		}
		weights = append(weights, weight)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read system.clusters: %w", err)
	}
	return weights, nil
}

// acceptedLayout reads the accepted layout of cluster and when it was
// recorded; ok is false when none was. It reads without
// select_sequential_consistency, which cluster connections send: an
// operator's accepting INSERT from clickhouse-client carries no quorum,
// and a sequentially consistent read never shows a part inserted without
// one above the last quorum part, so the accept would stay invisible and
// the halt would never end. The row is written rarely and read as the
// latest one; a replica that has not fetched it yet answers the previous
// layout for a moment, which only delays a resume.
func acceptedLayout(ctx context.Context, conn driver.Conn, cluster string) (l clusterLayout, at time.Time, ok bool, err error) {
	ctx = WithoutSequentialConsistency(ctx)
	rows, err := conn.Query(ctx, `SELECT shards, weights, recorded_at FROM cluster_layout
		WHERE cluster = ? ORDER BY recorded_at DESC LIMIT 1`, cluster)
	if err != nil {
		return l, at, false, fmt.Errorf("read cluster_layout: %w", err)
	}
	defer rows.Close()
	if rows.Next() {
		if err := rows.Scan(&l.shards, &l.weights, &at); err != nil {
			return l, at, false, fmt.Errorf("read cluster_layout: %w", err)
		}
		ok = true
	}
	if err := rows.Err(); err != nil {
		return l, at, false, fmt.Errorf("read cluster_layout: %w", err)
	}
	return l, at, ok, nil
}

func recordLayout(ctx context.Context, conn driver.Conn, cluster string, l clusterLayout) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO cluster_layout (cluster, shards, weights, recorded_at)")
	if err != nil {
		return fmt.Errorf("record the cluster layout: %w", err)
	}
	if err := batch.Append(cluster, l.shards, l.weights, time.Now().UTC()); err != nil {
		_ = batch.Abort()
		return fmt.Errorf("record the cluster layout: %w", err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("record the cluster layout: %w", err)
	}
	return nil
}

// isUnknownTable tells whether err is ClickHouse's UNKNOWN_TABLE.
func isUnknownTable(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && ex.Code == 60
}

// WithoutSequentialConsistency returns ctx carrying
// select_sequential_consistency=0, for a read of a control row that an
// operator may write without the insert quorum (cluster_layout,
// event_topic_partitions): cluster connections read sequentially
// consistent, which hides such a row for good. Query settings come after
// the connection's, and ClickHouse applies the last.
func WithoutSequentialConsistency(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"select_sequential_consistency": 0}))
}

package chclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// clusterSettings are the settings every connection sends on a cluster
// (Config.Cluster), pool and sessions alike; none on one server.
//
//   - insert_distributed_sync=1: an INSERT into a Distributed table
//     returns only once every shard it writes to has its rows (and the
//     insert's quorum, when one is set), and fails otherwise. By default
//     a Distributed table queues the rows on the server's disk and sends
//     them later: the insert would be acknowledged (and the aggregator's
//     Kafka offsets committed) before the data is in a replicated table,
//     and a lookup that follows would not see it.
//   - insert_deduplicate=0: a Replicated table drops a block identical to
//     one inserted before (its hash is kept in ZooKeeper) and then skips
//     its materialized views too; a retry after an insert whose view
//     failed would then never reach event_identities or readings_by_*.
//     Tally's retries are made harmless by its tables (identical rows
//     fold, reads use FINAL), not by block deduplication, exactly as on
//     one server, where MergeTree tables do not deduplicate.
//   - insert_quorum=Config.InsertQuorum, when set: every insert, not only
//     the aggregator's, returns once every replica of its shard has it
//     (CheckCluster holds the quorum to that), so any replica a later read
//     reaches holds it: a catalog document, an idempotency key or a copy
//     migration's rows written through one server are read back through
//     another, and the first-version lookup sees a copy's identities.
//     Catalog writes are rare, so 18.16's one quorum insert at a time per
//     table and shard (code 286, retried) costs them nothing noticeable.
//   - with the quorum, select_sequential_consistency=1 on every read: a
//     quorum insert's part is readable on the replica that wrote it as
//     soon as it is committed there, before the other replicas fetched it
//     (and for good if the quorum times out, code 319); a read that
//     reaches it there and a later one that reaches another replica would
//     see a row appear and vanish. A meter revision seen by one batch and
//     not by a later one loses readings (aggregator/backfill.go's
//     argument). Sequentially consistent reads show only parts whose
//     quorum was reached, which every replica then has, so what one read
//     saw every later read sees.
//   - insert_quorum_timeout: a quorum insert waits this long for the other
//     replicas and then fails (319, retried) instead of holding the
//     connection for ClickHouse's default 10 minutes.
//   - max_replica_delay_for_distributed_queries and
//     fallback_to_stale_replicas_for_distributed_queries=0: a replica
//     that is catching up (restarted after a long outage, added, or
//     rebuilt after losing its disk) fetches the shard's parts in no
//     particular order, and ClickHouse 18.16's sequential consistency only
//     asks whether it has the last quorum part: it can answer with a
//     fraction of the rows. Its replication delay is the age of the
//     oldest part it lacks, so a Distributed read skips a replica more
//     than maxReplicaDelay behind, and fails (retried) when every replica
//     of a shard is, rather than read a stale one.
func (c *Config) clusterSettings() clickhouse.Settings {
	if c.Cluster == "" {
		return clickhouse.Settings{}
	}
	s := clickhouse.Settings{
		"insert_distributed_sync":                            1,
		"insert_deduplicate":                                 0,
		"max_replica_delay_for_distributed_queries":          maxReplicaDelaySeconds,
		"fallback_to_stale_replicas_for_distributed_queries": 0,
	}
	if c.InsertQuorum > 0 {
		s["insert_quorum"] = c.InsertQuorum
		s["insert_quorum_timeout"] = insertQuorumTimeoutMillis
		s["select_sequential_consistency"] = 1
	}
	return s
}

// maxReplicaDelaySeconds is the replication delay beyond which a
// Distributed read on a cluster does not read a replica. With the quorum at
// every replica, a replica in service lags only by the parts being fetched
// for inserts that have not returned yet; one catching up lags by the age
// of the oldest part it lacks, minutes for a rebuilt one.
const maxReplicaDelaySeconds = 5

// insertQuorumTimeoutMillis bounds a quorum insert's wait for the other
// replicas (ClickHouse's default is 600,000).
const insertQuorumTimeoutMillis = 60_000

// ErrClusterUnfit is what CheckCluster's errors wrap.
var ErrClusterUnfit = errors.New("clickhouse cluster unfit for tally")

// host is a server of a cluster, as system.clusters lists it.
type host struct {
	Shard, Replica uint32
	Addr           string // host:port of its native protocol
}

// clusterHosts lists the servers of cluster, as the server conn reaches
// sees them in its system.clusters; none when it does not know cluster.
func clusterHosts(ctx context.Context, conn driver.Conn, cluster string) ([]host, error) {
	rows, err := conn.Query(ctx, `SELECT shard_num, replica_num, host_name, port FROM system.clusters
		WHERE cluster = ? ORDER BY shard_num, replica_num`, cluster)
	if err != nil {
		return nil, fmt.Errorf("read system.clusters: %w", err)
	}
	defer rows.Close()
	var hosts []host
	for rows.Next() {
		var h host
		var name string
		var port uint16
		if err := rows.Scan(&h.Shard, &h.Replica, &name, &port); err != nil {
			return nil, fmt.Errorf("read system.clusters: %w", err)
		}
		h.Addr = fmt.Sprintf("%s:%d", name, port)
		hosts = append(hosts, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read system.clusters: %w", err)
	}
	return hosts, nil
}

// CheckCluster tells whether the cluster of cfg can hold Tally's tables
// as the services use them, reading system.clusters on the server conn
// reaches. It fails when the server does not know the cluster, and when
// some shard has more than one replica and cfg.InsertQuorum is not the
// number of replicas of every shard.
//
// Why the quorum must be every replica: the aggregator's first-version
// lookup must see every event stored before it (read-your-writes), or a
// later version of an event is metered as a first one and counted twice.
// The lookup reads whichever replica of a shard the Distributed table
// picks, with select_sequential_consistency=1, which sees only the
// inserts a quorum acknowledged; an insert acknowledged by fewer replicas
// than the shard has may be missing from the replica a later lookup
// reads (ClickHouse replicates asynchronously). With the quorum at every
// replica, any replica holds every insert that returned. The price: while
// a replica of a shard is down, inserts into that shard fail (and are
// retried) until it is back: availability traded for exact counts.
// A quorum above a shard's replicas would fail every insert
// (TOO_FEW_LIVE_REPLICAS), so shards must have as many replicas each.
//
// Then it compares the cluster's shards and their weights with the layout
// recorded when Tally first ran on it, and fails on a difference: rows
// already stored would be routed to other shards (layout.go).
func CheckCluster(ctx context.Context, conn driver.Conn, cfg Config) error {
	hosts, err := clusterHosts(ctx, conn, cfg.Cluster)
	if err != nil {
		return err
	}
	if len(hosts) == 0 {
		return fmt.Errorf("%w: clickhouse.cluster %q is not a cluster of the server's remote_servers (system.clusters has none of that name)",
			ErrClusterUnfit, cfg.Cluster)
	}
	replicas := map[uint32]int{}
	var shards []uint32 // in order
	for _, h := range hosts {
		if replicas[h.Shard] == 0 {
			shards = append(shards, h.Shard)
		}
		replicas[h.Shard]++
	}
	var errs []error
	for _, shard := range shards {
		n := replicas[shard]
		switch {
		case n > 1 && cfg.InsertQuorum < n:
			errs = append(errs, fmt.Errorf("%w: shard %d of cluster %s has %d replicas and clickhouse.insert-quorum is %d: "+
				"the aggregator's first-version lookup reads any replica of a shard and sees only the inserts that every replica has "+
				"(read-your-writes, or an event's later version is counted again); set clickhouse.insert-quorum=%d",
				ErrClusterUnfit, shard, cfg.Cluster, n, cfg.InsertQuorum, n))
		case cfg.InsertQuorum > n:
			errs = append(errs, fmt.Errorf("%w: shard %d of cluster %s has %d replicas, fewer than clickhouse.insert-quorum %d: every insert would fail",
				ErrClusterUnfit, shard, cfg.Cluster, n, cfg.InsertQuorum))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, CheckClusterLayout(ctx, conn, cfg)) // shards and weights as recorded (layout.go)
	}
	return errors.Join(errs...)
}

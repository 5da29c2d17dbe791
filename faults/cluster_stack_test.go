package faults

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tally-oss/tally/internal/chserver"
)

// clusterName is the ClickHouse cluster of the cluster test, in
// remote_servers and -clickhouse.cluster.
const clusterName = "tally"

// newClusterStack starts the production layout on this machine: ZooKeeper,
// ClickHouse as 2 shards x 2 replicas, a three-broker kfake, `tally
// migrate -clickhouse.cluster`, two ingest and two query processes and
// opts.aggregators aggregators. Every ClickHouse client gets the four
// servers, starting at a different one per process (clickhouse-go dials
// them in order), so the processes spread over the servers and fail over
// when theirs is killed.
func newClusterStack(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir()) // chserver compares resolved paths
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, dir: dir, client: newClient()}
	began := time.Now()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	zk, err := chserver.StartZooKeeper(ctx, filepath.Join(dir, "zookeeper"), logger)
	if err != nil {
		t.Fatalf("start zookeeper: %v", err)
	}
	t.Cleanup(func() { _ = zk.Stop() })
	chc, err := chserver.StartCluster(ctx, chserver.ClusterOptions{
		Name: clusterName, Shards: 2, Replicas: 2, Dir: filepath.Join(dir, "clickhouse"), ZooKeeperAddr: zk.Addr(),
	}, logger)
	if err != nil {
		t.Fatalf("start clickhouse cluster: %v", err)
	}
	t.Cleanup(func() { _ = chc.Stop() })
	s.chCluster = chc
	_, port, _ := net.SplitHostPort(chc.Addr(0, 0))
	s.chTCP, _ = strconv.Atoi(port)

	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatalf("start kfake with 3 brokers: %v", err)
	}
	s.cluster = c
	t.Cleanup(func() { s.withCluster(func(c *kfake.Cluster) { c.Close() }) })
	s.kafkaAddrs = c.ListenAddrs()
	t.Logf("zookeeper %s, clickhouse %v and kafka %v up in %s", zk.Addr(), chc.Addrs(), s.kafkaAddrs,
		time.Since(began).Round(time.Millisecond))

	migrated := time.Now()
	s.runTally(append([]string{"migrate"}, s.clusterArgs(0)...)...)
	t.Logf("tally migrate -clickhouse.cluster=%s took %s", clusterName, time.Since(migrated).Round(time.Millisecond))
	s.startTally(opts, tallyOptions{
		kafkaArgs: []string{"-kafka.brokers=" + s.brokerAddr(), "-kafka.partitions=6",
			"-kafka.replication-factor=3", "-kafka.min-insync-replicas=2"},
		clickhouseArgs: s.clusterArgs,
		ingests:        2, queries: 2,
	})
	t.Logf("cluster stack ready in %s: ingest %s %s, query %s %s, %d aggregators",
		time.Since(began).Round(time.Millisecond), s.ingests[0].addr, s.ingests[1].addr,
		s.queries[0].addr, s.queries[1].addr, len(s.aggregators))
	return s
}

// clusterArgs are the ClickHouse flags of the i-th process of a kind: all
// four servers, the i-th first, and the quorum of every replica of a
// shard (tally refuses a cluster whose shards have more replicas than
// its insert quorum: see TestClusterKillReplicaAndAggregator).
func (s *stack) clusterArgs(i int) []string {
	addrs := s.chCluster.Addrs()
	k := i % len(addrs)
	rotated := append(append([]string{}, addrs[k:]...), addrs[:k]...)
	return []string{"-clickhouse.addr=" + strings.Join(rotated, ","), "-clickhouse.database=" + database,
		"-clickhouse.cluster=" + clusterName, "-clickhouse.insert-quorum=2"}
}

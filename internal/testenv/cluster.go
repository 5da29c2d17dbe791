package testenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/chserver"
)

// EnvClickHouseCluster names a running ClickHouse cluster to use instead of
// starting one: "<name>=<addr>,<addr>,..." (native addresses of every
// server), e.g. "tally=127.0.0.1:19001,127.0.0.1:19002,127.0.0.1:19003,127.0.0.1:19004".
const EnvClickHouseCluster = "TALLY_TEST_CLICKHOUSE_CLUSTER"

// ClusterName is the name of the shared test cluster in remote_servers.
const ClusterName = "tally"

// Cluster layout of the shared test cluster: the smallest one that has
// both sharding and replication.
const (
	ClusterShards   = 2
	ClusterReplicas = 2
)

// sharedCluster is the one ZooKeeper and 2x2 ClickHouse cluster of this test
// binary, started on first use (about 3 s and 500 MB) and stopped by Main.
var sharedCluster struct {
	once  sync.Once
	name  string
	addrs []string
	err   error

	mu      sync.Mutex // guards cluster, zk and dir against Main's shutdown
	cluster *chserver.Cluster
	zk      *chserver.ZooKeeper
	dir     string
}

// Cluster returns the name and the native addresses of every server (shard
// by shard, replica by replica) of the test binary's shared ClickHouse
// cluster: 2 shards x 2 replicas on a private ZooKeeper, started on first
// use. It fails the test, never skips it, when the cluster cannot start
// (ZooKeeper or ClickHouse not installed: `make deps` installs both). Tests
// share it, isolated by database (NewClusterDatabase); a test that kills
// servers must start its own with chserver.StartCluster, since ON CLUSTER
// DDL waits for every server.
func Cluster(t testing.TB) (name string, addrs []string) {
	t.Helper()
	sharedCluster.once.Do(func() {
		if spec := os.Getenv(EnvClickHouseCluster); spec != "" {
			sharedCluster.name, sharedCluster.addrs, sharedCluster.err = parseClusterSpec(spec)
			return
		}
		sharedCluster.name, sharedCluster.addrs, sharedCluster.err = startSharedCluster()
	})
	if sharedCluster.err != nil {
		t.Fatal(sharedCluster.err)
	}
	return sharedCluster.name, append([]string(nil), sharedCluster.addrs...)
}

// NewClusterDatabase creates a database with a unique name on every server
// of the shared cluster (CREATE DATABASE ... ON CLUSTER) and drops it on
// every server when the test ends.
func NewClusterDatabase(t testing.TB) (name string, addrs []string, database string) {
	t.Helper()
	name, addrs = Cluster(t)
	database = "test_" + randomHex(8)
	onCluster(t, addrs[0], fmt.Sprintf("CREATE DATABASE %s ON CLUSTER %s", database, name))
	t.Cleanup(func() {
		onCluster(t, addrs[0], fmt.Sprintf("DROP DATABASE IF EXISTS %s ON CLUSTER %s", database, name))
	})
	return name, addrs, database
}

// onCluster runs a DDL statement ON CLUSTER from one server. ClickHouse
// returns once every server ran it (or after distributed_ddl_task_timeout,
// 180 s, with an error naming the servers that did not).
func onCluster(t testing.TB, addr, query string) {
	t.Helper()
	conn := open(t, addr, "default")
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := conn.Exec(ctx, query); err != nil {
		t.Errorf("%s (on %s): %v", query, addr, err)
		t.FailNow()
	}
}

func parseClusterSpec(spec string) (string, []string, error) {
	name, list, ok := strings.Cut(spec, "=")
	var addrs []string
	for a := range strings.SplitSeq(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if !ok || name == "" || len(addrs) == 0 {
		return "", nil, fmt.Errorf("%s=%q: want <cluster name>=<addr>,<addr>,...", EnvClickHouseCluster, spec)
	}
	return name, addrs, nil
}

func startSharedCluster() (string, []string, error) {
	if _, _, err := chserver.LookPath(); err != nil {
		return "", nil, fmt.Errorf("%w (for tests: run `make deps`, or set %s to a running cluster)", err, EnvClickHouseCluster)
	}
	dir, err := os.MkdirTemp("", "tally-test-cluster-")
	if err != nil {
		return "", nil, fmt.Errorf("create cluster test dir: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Two minutes: a JVM and four servers, while `go test ./...` runs other
	// packages' servers on the same two cores.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	zk, err := chserver.StartZooKeeper(ctx, filepath.Join(dir, "zookeeper"), logger)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start test zookeeper (for tests: run `make deps`, or set %s to a running cluster): %w",
			EnvClickHouseCluster, err)
	}
	cluster, err := chserver.StartCluster(ctx, chserver.ClusterOptions{
		Name: ClusterName, Shards: ClusterShards, Replicas: ClusterReplicas,
		Dir: filepath.Join(dir, "clickhouse"), ZooKeeperAddr: zk.Addr(),
	}, logger)
	if err != nil {
		_ = zk.Stop()
		_ = os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start test clickhouse cluster: %w", err)
	}
	sharedCluster.mu.Lock()
	sharedCluster.cluster, sharedCluster.zk, sharedCluster.dir = cluster, zk, dir
	sharedCluster.mu.Unlock()
	return cluster.Name(), cluster.Addrs(), nil
}

// stopSharedCluster stops the ClickHouse servers before ZooKeeper, so they
// do not spend their shutdown reconnecting to it.
func stopSharedCluster() error {
	sharedCluster.mu.Lock()
	defer sharedCluster.mu.Unlock()
	if sharedCluster.cluster == nil {
		return nil
	}
	err := errors.Join(sharedCluster.cluster.Stop(), sharedCluster.zk.Stop())
	if rmErr := os.RemoveAll(sharedCluster.dir); rmErr != nil {
		err = errors.Join(err, rmErr)
	}
	sharedCluster.cluster = nil
	return err
}

package chclient_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/chserver"
)

// review 8b G5: cluster_layout is itself a Distributed table sharded by
// cityHash64(cluster) (0024), so the accepted layout is stored on ONE
// shard. When remote_servers loses that shard (a shard block deleted by
// mistake, a decommission done out of order), a read through the
// Distributed table no longer finds any accepted layout, and
// CheckClusterLayout then *records the current one* and returns nil: the
// change that most re-routes customers (every customer of the lost shard
// now goes to the survivors; its rows are invisible to lookups, so later
// versions count twice) is accepted silently, at start and by the running
// guard. Expected: ErrClusterUnfit.
//
// Private 2 shards x 1 replica cluster; the row is recorded through the
// surviving server, the shard holding it is then removed from that
// server's remote_servers (ClickHouse reloads it live).
func TestClusterLayoutRowOnRemovedShard(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	zk, err := chserver.StartZooKeeper(ctx, filepath.Join(dir, "zookeeper"), logger)
	if err != nil {
		t.Fatalf("start zookeeper: %v", err)
	}
	t.Cleanup(func() { _ = zk.Stop() })
	const name = "r8b"
	chc, err := chserver.StartCluster(ctx, chserver.ClusterOptions{Name: name, Shards: 2, Replicas: 1,
		Dir: filepath.Join(dir, "clickhouse"), ZooKeeperAddr: zk.Addr()}, logger)
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() { _ = chc.Stop() })

	server := func(s int) clickhouse.Conn {
		c, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chc.Addr(s, 0)}, Protocol: clickhouse.Native,
			Auth: clickhouse.Auth{Username: "default"}, DialTimeout: 5 * time.Second, ReadTimeout: 4 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	s0 := server(0)
	var holder uint64
	if err := s0.QueryRow(ctx, "SELECT toUInt64(cityHash64(?) % 2)", name).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	survivor := 1 - int(holder) // shard index (0-based) that does NOT hold the row
	const db = "r8b"
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS " + db + " ON CLUSTER " + name,
		"CREATE TABLE IF NOT EXISTS " + db + ".cluster_layout_local ON CLUSTER " + name + ` (cluster String, shards UInt32, weights Array(UInt32), recorded_at DateTime('UTC'))
		 ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/r8b/cluster_layout', '{replica}', recorded_at) ORDER BY cluster`,
		"CREATE TABLE IF NOT EXISTS " + db + ".cluster_layout ON CLUSTER " + name + " AS " + db + ".cluster_layout_local ENGINE = Distributed(" + name + ", " + db + ", cluster_layout_local, cityHash64(cluster))",
		"CREATE TABLE IF NOT EXISTS " + db + ".events_local ON CLUSTER " + name + ` (id String)
		 ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/r8b/events', '{replica}') ORDER BY id`,
		"CREATE TABLE IF NOT EXISTS " + db + ".events ON CLUSTER " + name + " AS " + db + ".events_local ENGINE = Distributed(" + name + ", " + db + ", events_local, cityHash64(id))",
	} {
		if err := s0.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	cfg := chclient.Config{Addr: chc.Addr(survivor, 0), User: "default", Database: db, Cluster: name,
		DialTimeout: 5 * time.Second, MaxOpenConns: 2, InsertQuorum: 1}
	svc, err := cfg.Open(ctx) // records "2 shards (weights 1, 1)"
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	var onHolder uint64
	if err := server(int(holder)).QueryRow(ctx, "SELECT count() FROM "+db+".cluster_layout_local").Scan(&onHolder); err != nil {
		t.Fatal(err)
	}
	if onHolder != 1 {
		t.Fatalf("the accepted layout is not on shard %d as cityHash64 says (%d rows there)", holder+1, onHolder)
	}

	// The cluster is in use: an event is stored on the survivor's shard.
	if err := server(survivor).Exec(ctx, "INSERT INTO "+db+".events_local SELECT 'e1'"); err != nil {
		t.Fatal(err)
	}

	// Remove the holder's shard from the survivor's remote_servers.
	path := filepath.Join(dir, "clickhouse", fmt.Sprintf("s%dr1", survivor+1), "config.xml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	holderAddr := chc.Addr(int(holder), 0)
	_, holderPort, _ := strings.Cut(holderAddr, ":")
	var kept []string
	removed := false
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.Contains(line, "<shard>") && strings.Contains(line, "<port>"+holderPort+"</port>") {
			removed = true
			continue
		}
		kept = append(kept, line)
	}
	if !removed {
		t.Fatalf("no shard line with port %s in %s", holderPort, path)
	}
	if err := os.WriteFile(path, []byte(strings.Join(kept, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	sv := server(survivor)
	for deadline := time.Now().Add(time.Minute); ; {
		var shards uint64
		if err := sv.QueryRow(ctx, "SELECT count() FROM system.clusters WHERE cluster = ?", name).Scan(&shards); err != nil {
			t.Fatal(err)
		}
		if shards == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the survivor still lists %d servers in %s after editing its config", shards, name)
		}
		time.Sleep(500 * time.Millisecond)
	}

	err = chclient.CheckClusterLayout(ctx, svc, cfg)
	if !errors.Is(err, chclient.ErrClusterUnfit) {
		var rows uint64
		_ = sv.QueryRow(ctx, "SELECT count() FROM "+db+".cluster_layout_local").Scan(&rows)
		t.Errorf("after shard %d (holding the accepted 2-shard layout) left remote_servers, CheckClusterLayout returned %v, "+
			"want ErrClusterUnfit; the survivor now holds %d accepted-layout rows (the 1-shard layout recorded as accepted)",
			holder+1, err, rows)
	}
}

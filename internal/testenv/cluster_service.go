package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/chclient"
)

// ClusterDB is a database of the shared cluster migrated ON CLUSTER
// (NewMigratedClusterDatabase): Name is the cluster, Addrs its servers
// (shard by shard, replica by replica), Database the database.
type ClusterDB struct {
	Name     string
	Addrs    []string
	Database string
}

// NewMigratedClusterDatabase is NewClusterDatabase with every migration
// applied ON CLUSTER (through the first server).
func NewMigratedClusterDatabase(t testing.TB) ClusterDB {
	t.Helper()
	name, addrs, db := NewClusterDatabase(t)
	d := ClusterDB{Name: name, Addrs: addrs, Database: db}
	cfg := d.Config(0, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	admin, err := cfg.OpenServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := chclient.Migrate(ctx, admin, db); err != nil {
		t.Fatalf("migrate on cluster %s: %v", name, err)
	}
	return d
}

// Config is the chclient.Config a service of d runs with through server
// i: the cluster, an insert quorum of every replica of a shard
// (ClusterReplicas) and at most maxOpenConns connections.
func (d ClusterDB) Config(i, maxOpenConns int) chclient.Config {
	return chclient.Config{Addr: d.Addrs[i], User: "default", Database: d.Database, Cluster: d.Name,
		DialTimeout: 5 * time.Second, MaxOpenConns: maxOpenConns, InsertQuorum: ClusterReplicas}
}

// Open opens a pool as a service of d through server i (Config), closed
// when the test ends.
func (d ClusterDB) Open(t testing.TB, i, maxOpenConns int) driver.Conn {
	t.Helper()
	cfg := d.Config(i, maxOpenConns)
	conn, err := cfg.Open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

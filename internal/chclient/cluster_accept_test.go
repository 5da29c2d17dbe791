package chclient_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tally-oss/tally/internal/chclient"
)

// TestClusterOperatorAcceptWithoutQuorumIsSeen (review 8b G8): an
// operator accepts a layout (or, README "Scaling the aggregator", a
// partition count) with an INSERT typed in clickhouse-client, without the
// insert quorum. Cluster connections read with
// select_sequential_consistency=1, and 18.16 hides a part inserted without
// the quorum above the partition's last quorum part (the row the first
// service recorded): the accept would stay invisible, the services keep
// refusing to start and halted aggregators never resume.
// CheckClusterLayout reads the accepted layout without it.
func TestClusterOperatorAcceptWithoutQuorumIsSeen(t *testing.T) {
	operatorAccept(t, clickhouse.Settings{"insert_distributed_sync": 1})
}

// With the quorum the same accept is seen (the fix's check).
func TestClusterOperatorAcceptWithQuorumIsSeen(t *testing.T) {
	operatorAccept(t, clickhouse.Settings{"insert_distributed_sync": 1, "insert_quorum": 2})
}

func operatorAccept(t *testing.T, settings clickhouse.Settings) {
	c, db := newClusterDatabase(t)
	ctx := t.Context()
	s0 := serverConn(t, c, 0, db)
	createClusterLayout(t, c, db, s0)
	cfg := c.config(0, db)
	svc, err := cfg.Open(ctx) // records the current layout with the quorum
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if err := chclient.CheckClusterLayout(ctx, svc, cfg); err != nil {
		t.Fatalf("before: %v", err)
	}
	// The operator accepts another layout, as README/SCALING.md say, from
	// clickhouse-client (synchronous here only to make the test
	// deterministic; the default asynchronous insert ends the same way).
	op := clickhouse.Context(ctx, clickhouse.WithSettings(settings))
	if err := s0.Exec(op, fmt.Sprintf("INSERT INTO %s.cluster_layout (cluster, shards, weights, recorded_at) SELECT '%s', 3, [1, 1, 1], now() + 3600",
		db, c.name)); err != nil {
		t.Fatal(err)
	}
	var stored uint64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		stored = 0
		for i := range c.addrs {
			var n uint64
			if err := serverConn(t, c, i, db).QueryRow(ctx, "SELECT count() FROM "+db+".cluster_layout_local WHERE shards = 3").Scan(&n); err != nil {
				t.Fatal(err)
			}
			stored += n
		}
		if stored >= 2 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("the operator's row is stored on %d replicas", stored)
	err = chclient.CheckClusterLayout(ctx, svc, cfg)
	if !errors.Is(err, chclient.ErrClusterUnfit) {
		t.Errorf("after the operator accepted 3 shards (row stored on %d replicas), CheckClusterLayout = %v, want ErrClusterUnfit "+
			"(3 accepted, 2 current): the service's sequentially consistent read does not see a row inserted without the quorum", stored, err)
	}
}

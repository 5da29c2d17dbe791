package chclient_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/schemas"
)

// TestRetryReachesViewsOnCluster: an insert retried after its first
// attempt stored the block in events but not in event_identities (the
// view's write failed; here the view is detached meanwhile) reaches
// event_identities, because a cluster's connections send
// insert_deduplicate=0. With ClickHouse's default (1) the Replicated
// table drops the identical block and skips its views: the identities
// would be missing for good, and the first-version lookup would count a
// later version of those events again.
func TestRetryReachesViewsOnCluster(t *testing.T) {
	c, db, admin := newMigratedClusterDatabase(t)
	ctx := t.Context()
	cfg := c.config(0, db)
	svc, err := cfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	target := schemas.Target{Database: db, Cluster: c.name}
	for _, tc := range []struct {
		name       string
		settings   func(context.Context) context.Context
		identities uint64 // after the retry
	}{
		{"ClickHouse's default insert_deduplicate=1", func(ctx context.Context) context.Context {
			return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_quorum": 2, "insert_deduplicate": 1}))
		}, 0},
		{"the cluster's connections", svc.(*chclient.Conn).WithSessionSettings, 3},
	} {
		insert := func() {
			t.Helper()
			batch, err := svc.PrepareBatch(tc.settings(ctx), "INSERT INTO events (org_id, customer_id, id, time, kafka_partition, kafka_offset)")
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if err := batch.Append("org_"+tc.name, fmt.Sprintf("customer_%d", i), "event", time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), int32(0), int64(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := batch.Send(); err != nil {
				t.Fatal(err)
			}
		}
		// The first attempt: the block is stored in events, its view's
		// write is lost.
		if err := chclient.ExecDDL(ctx, admin, target, "DETACH TABLE "+db+".event_identities_feed ON CLUSTER "+c.name); err != nil {
			t.Fatal(err)
		}
		insert()
		if err := chclient.ExecDDL(ctx, admin, target, "ATTACH TABLE "+db+".event_identities_feed ON CLUSTER "+c.name); err != nil {
			t.Fatal(err)
		}
		insert() // the retry, identical
		if n := count(t, svc, "SELECT count() FROM events FINAL WHERE org_id = ?", "org_"+tc.name); n != 3 {
			t.Errorf("%s: %d events, want 3", tc.name, n)
		}
		if n := count(t, svc, "SELECT count() FROM event_identities FINAL WHERE org_id = ?", "org_"+tc.name); n != tc.identities {
			t.Errorf("%s: %d identities after the retry, want %d", tc.name, n, tc.identities)
		}
	}
}

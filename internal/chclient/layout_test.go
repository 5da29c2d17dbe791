package chclient_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/chclient"
)

// TestClusterLayoutGuard: the first service to start on a migrated
// cluster records its shard layout (2 shards of weight 1 on the test
// cluster); a different accepted layout (here 3 shards, as if a shard had
// been added to remote_servers since) makes every service refuse to start,
// naming both, and a running process that checks again notices;
// recording the current layout again, as an operator does after
// re-sharding, lets them start. Before the migrations have created
// the table, the check is skipped.
func TestClusterLayoutGuard(t *testing.T) {
	c, db := newClusterDatabase(t)
	ctx := t.Context()
	cfg := c.config(0, db)

	open := func() error {
		t.Helper()
		conn, err := cfg.Open(ctx)
		if err == nil {
			_ = conn.Close()
		}
		return err
	}
	if err := open(); err != nil {
		t.Fatalf("Open before the migrations: %v, want the layout check skipped", err)
	}

	admin, err := cfg.OpenServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := chclient.Migrate(ctx, admin, db); err != nil {
		t.Fatal(err)
	}
	if err := open(); err != nil {
		t.Fatalf("first Open: %v", err)
	}
	conn, err := cfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	type layout struct {
		shards  uint32
		weights []uint32
	}
	var recorded []layout
	rows, err := conn.Query(ctx, "SELECT shards, weights FROM cluster_layout WHERE cluster = ? ORDER BY recorded_at", c.name)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var l layout
		if err := rows.Scan(&l.shards, &l.weights); err != nil {
			t.Fatal(err)
		}
		recorded = append(recorded, l)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if len(recorded) != 1 || recorded[0].shards != 2 || len(recorded[0].weights) != 2 || recorded[0].weights[0] != 1 || recorded[0].weights[1] != 1 {
		t.Fatalf("cluster_layout holds %v after the first Open, want one row: 2 shards, weights [1 1]", recorded)
	}

	// Accepted layouts recorded later than the first, as an operator's
	// INSERT would.
	accept := func(conn driver.Conn, shards uint32, weights []uint32, at time.Time) {
		t.Helper()
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO cluster_layout (cluster, shards, weights, recorded_at)")
		if err != nil {
			t.Fatal(err)
		}
		if err := batch.Append(c.name, shards, weights, at); err != nil {
			t.Fatal(err)
		}
		if err := batch.Send(); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	accept(conn, 3, []uint32{1, 1, 1}, now.Add(time.Hour))
	err = open()
	if !errors.Is(err, chclient.ErrClusterUnfit) ||
		!strings.Contains(err.Error(), "2 shards (weights 1, 1)") || !strings.Contains(err.Error(), "3 shards (weights 1, 1, 1)") {
		t.Fatalf("Open with 3 shards recorded: %v, want ErrClusterUnfit naming 2 shards (weights 1, 1) and 3 shards (weights 1, 1, 1)", err)
	}
	t.Logf("Open with 3 shards recorded: %v", err)
	// A running process that checks again notices too (ClickHouse applies
	// a changed remote_servers without a restart).
	if err := chclient.CheckClusterLayout(ctx, conn, cfg); !errors.Is(err, chclient.ErrClusterUnfit) {
		t.Errorf("CheckClusterLayout with 3 shards recorded: %v, want ErrClusterUnfit", err)
	}
	// Another server of the cluster refuses as well.
	other := c.config(3, db)
	if conn, err := other.Open(ctx); !errors.Is(err, chclient.ErrClusterUnfit) {
		if err == nil {
			_ = conn.Close()
		}
		t.Errorf("Open on server 3 with 3 shards recorded: %v, want ErrClusterUnfit", err)
	}

	accept(conn, 2, []uint32{1, 1}, now.Add(2*time.Hour))
	if err := open(); err != nil {
		t.Errorf("Open after the current layout was accepted again: %v", err)
	}
}

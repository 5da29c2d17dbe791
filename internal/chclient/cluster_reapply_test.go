package chclient_test

import (
	"testing"

	"github.com/tally-oss/tally/internal/chclient"
)

// TestReapplyOnCluster: a server that joins the cluster after the
// migrations ran has none of the tables (the ON CLUSTER tasks named the
// servers of their time, and every version is recorded). Modelled by
// dropping a shard's local readings table and the view that feeds
// readings_by_day from one server: a plain Migrate applies nothing and
// leaves them missing; with Reapply it creates both again there, the
// table before the view (migration order), and the view feeds the table
// on that server again.
func TestReapplyOnCluster(t *testing.T) {
	c, db, admin := newMigratedClusterDatabase(t)
	ctx := t.Context()
	const newcomer = 3
	server := serverConn(t, c, newcomer, db)
	for _, stmt := range []string{"DROP TABLE " + db + ".readings_by_day_feed", "DROP TABLE " + db + ".readings_by_day_local"} {
		if err := server.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	missing := func() uint64 {
		return 2 - count(t, server, "SELECT count() FROM system.tables WHERE database = ? AND name IN ('readings_by_day_feed', 'readings_by_day_local')", db)
	}
	if applied, err := chclient.Migrate(ctx, admin, db); err != nil || len(applied) != 0 || missing() != 2 {
		t.Fatalf("Migrate without Reapply: applied %d (%v), %d of the table and view missing; want nothing applied and both missing", len(applied), err, missing())
	}
	if applied, err := chclient.MigrateWith(ctx, admin, db, chclient.MigrateOptions{Reapply: true}); err != nil || len(applied) != 0 {
		t.Fatalf("Migrate with Reapply: applied %d, %v; want nothing applied (only re-run)", len(applied), err)
	}
	if n := missing(); n != 0 {
		t.Fatalf("after Reapply, %d of readings_by_day_local and its feed are still missing on %s", n, c.addrs[newcomer])
	}
	// The view feeds the table again on that server: a reading inserted
	// there, into its local readings table, reaches its readings_by_day.
	if err := server.Exec(ctx, "INSERT INTO "+db+".readings_local (org_id, meter_key, meter_revision, customer_id, event_id, time, time_ns, value) "+
		"SELECT 'o', 'm', 1, 'c', 'e', toDateTime('2026-01-01 00:00:00', 'UTC'), 0, toDecimal128(1, 12)"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, server, "SELECT count() FROM "+db+".readings_by_day_local WHERE org_id = 'o'"); n != 1 {
		t.Fatalf("readings_by_day_local on %s holds %d rows of the reading inserted there, want 1", c.addrs[newcomer], n)
	}
}

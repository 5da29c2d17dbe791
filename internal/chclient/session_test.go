package chclient_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestSessionSettings checks that a session sends the consistency settings
// that are configured and no others, and that ClickHouse accepts them with
// Tally's plain MergeTree tables: an insert with insert_quorum=2 and a read
// with select_sequential_consistency=1 both work on one server (18.16
// ignores them for tables that are not Replicated).
func TestSessionSettings(t *testing.T) {
	addr, db := testenv.NewMigratedDatabase(t)
	for _, tt := range []struct {
		name string
		cfg  chclient.Config
		want map[string]string
	}{
		{"off", chclient.Config{}, map[string]string{"insert_quorum": "0", "select_sequential_consistency": "0"}},
		{"sequential", chclient.Config{SequentialConsistency: true}, map[string]string{"insert_quorum": "0", "select_sequential_consistency": "1"}},
		{"quorum", chclient.Config{InsertQuorum: 2}, map[string]string{"insert_quorum": "2", "select_sequential_consistency": "1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cfg := tt.cfg
			cfg.Addr, cfg.User, cfg.Database, cfg.DialTimeout, cfg.MaxOpenConns = addr, "default", db, 5*time.Second, 2
			pool, err := cfg.Open(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			sdb := pool.(*chclient.Conn).OpenSession()
			defer sdb.Close()
			conn, err := sdb.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()

			const settingsQuery = `SELECT name, value FROM system.settings
				WHERE name IN ('insert_quorum', 'select_sequential_consistency')`
			rows, err := conn.QueryContext(ctx, settingsQuery)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for rows.Next() {
				var name, value string
				if err := rows.Scan(&name, &value); err != nil {
					t.Fatal(err)
				}
				got[name] = value
			}
			if err := rows.Close(); err != nil {
				t.Fatal(err)
			}
			for name, want := range tt.want {
				if got[name] != want {
					t.Errorf("session: %s = %q, want %q", name, got[name], want)
				}
			}
			// The pool sends them only where asked to.
			for _, asked := range []bool{false, true} {
				qctx := ctx
				if asked {
					qctx = pool.(*chclient.Conn).WithSessionSettings(ctx)
				}
				prows, err := pool.Query(qctx, settingsQuery)
				if err != nil {
					t.Fatal(err)
				}
				for prows.Next() {
					var name, value string
					if err := prows.Scan(&name, &value); err != nil {
						t.Fatal(err)
					}
					want := "0"
					if asked {
						want = tt.want[name]
					}
					if value != want {
						t.Errorf("pool (with session settings %v): %s = %q, want %q", asked, name, value, want)
					}
				}
				prows.Close()
			}

			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			stmt, err := tx.PrepareContext(ctx, `INSERT INTO events (org_id, customer_id, id, type, source, time, time_ns,
				properties, ingested_at, kafka_partition, kafka_offset)`)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC().Truncate(time.Second)
			if _, err := stmt.ExecContext(ctx, "o", "c", tt.name, "t", "", now, now.UnixNano(), "{}", now, int32(1), int64(2)); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatalf("insert: %v", err)
			}
			var n uint64
			if err := conn.QueryRowContext(ctx, "SELECT count() FROM events WHERE id = ?", tt.name).Scan(&n); err != nil {
				t.Fatalf("read: %v", err)
			}
			if n != 1 {
				t.Errorf("read %d rows of the insert, want 1", n)
			}
		})
	}
}

// TestClusterSettings: on a cluster every connection, of the pool and of
// sessions, asked for the session settings or not, sends
// insert_distributed_sync=1, insert_deduplicate=0 and the insert quorum
// (so catalog writes through the pool are on every replica too); on one
// server none of them does, and only sessions send the quorum.
func TestClusterSettings(t *testing.T) {
	addr := testenv.ClickHouse(t)
	for _, cluster := range []string{"", "tally"} {
		want := map[string]string{"insert_distributed_sync": "0", "insert_deduplicate": "1", "insert_quorum": "0"}
		if cluster != "" {
			want = map[string]string{"insert_distributed_sync": "1", "insert_deduplicate": "0", "insert_quorum": "0"}
		}
		ctx := t.Context()
		// OpenLazy: Open would check a cluster this server does not have.
		cfg := chclient.Config{Addr: addr, User: "default", Database: "default", DialTimeout: 5 * time.Second,
			MaxOpenConns: 2, Cluster: cluster, InsertQuorum: 2}
		pool, err := cfg.OpenLazy()
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		const settingsQuery = `SELECT name, value FROM system.settings
			WHERE name IN ('insert_distributed_sync', 'insert_deduplicate', 'insert_quorum')`
		check := func(who string, got map[string]string, quorum string) {
			for name, value := range want {
				if name == "insert_quorum" {
					value = quorum
				}
				if got[name] != value {
					t.Errorf("cluster %q, %s: %s = %q, want %q", cluster, who, name, got[name], value)
				}
			}
		}
		for _, asked := range []bool{false, true} {
			qctx, quorum := ctx, "0"
			if cluster != "" {
				quorum = "2"
			}
			if asked {
				qctx, quorum = pool.(*chclient.Conn).WithSessionSettings(ctx), "2"
			}
			rows, err := pool.Query(qctx, settingsQuery)
			if err != nil {
				t.Fatal(err)
			}
			check(fmt.Sprintf("pool (with session settings %v)", asked), settingValues(t, rows), quorum)
		}
		sdb := pool.(*chclient.Conn).OpenSession()
		defer sdb.Close()
		rows, err := sdb.QueryContext(ctx, settingsQuery)
		if err != nil {
			t.Fatal(err)
		}
		check("session", settingValues(t, rows), "2")
	}
}

// settingValues reads (name, value) rows of system.settings, from the
// pool or a session, into a map, and closes them.
func settingValues(t *testing.T, rows interface {
	Next() bool
	Scan(...any) error
	Close() error
}) map[string]string {
	t.Helper()
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			t.Fatal(err)
		}
		got[name] = value
	}
	return got
}

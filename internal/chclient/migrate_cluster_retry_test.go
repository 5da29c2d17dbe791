package chclient_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/chclient"
)

// refusalWatch is the migration's connection, unchanged, that counts the
// statements holding the line insert (the copy's INSERT) which ClickHouse
// refused with code 286 (UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE); the
// first refusal closes refused. It is not a *chclient.Conn, so the
// migration takes the cluster from MigrateOptions.Cluster and the default
// user's credentials, which are the test cluster's.
type refusalWatch struct {
	driver.Conn
	insert   string
	refusals atomic.Int64
	once     sync.Once
	refused  chan struct{}
}

func (w *refusalWatch) Exec(ctx context.Context, query string, args ...any) error {
	err := w.Conn.Exec(ctx, query, args...)
	var ex *clickhouse.Exception
	if strings.Contains(query, w.insert) && errors.As(err, &ex) && ex.Code == 286 {
		w.refusals.Add(1)
		w.once.Do(func() { close(w.refused) })
	}
	return err
}

// TestCopyOnClusterRetriesWhileAQuorumIsPending: a copy migration whose
// INSERT is refused because an earlier quorum insert into its target on
// the same shard has not reached its quorum (ClickHouse 18.16 runs one
// quorum insert per table and shard at a time, code 286) is run again
// until that quorum is reached, and the migrations complete with every
// reading in the target exactly once.
//
// The pending quorum is made by hand: replica 2 of shard 1 stops fetching
// readings_by_day_local, and a quorum insert into readings_by_day_local on
// replica 1 times out (code 319) waiting for it. The replica fetches again
// only once the copy has been refused, so the copy is refused at least
// once whatever the timing; without the retry the migration fails there.
// The fetch and the quorum then take about 10 s here, within the retries'
// backoff (copyRetries, about a minute).
func TestCopyOnClusterRetriesWhileAQuorumIsPending(t *testing.T) {
	c, db := newClusterDatabase(t)
	ctx := t.Context()
	admin := migrateUpToOnCluster(t, c, db, 16)
	const n = copyReadings
	writeReadingsBeforeCopy(t, c, db)

	// Shard 1's quorum for readings_by_day_local stays pending while its
	// replica 2 does not fetch.
	replica2 := serverConn(t, c, 1, db)
	if err := replica2.Exec(ctx, "SYSTEM STOP FETCHES "+db+".readings_by_day_local"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replica2.Exec(context.Background(), "SYSTEM START FETCHES "+db+".readings_by_day_local") })
	quorum := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_quorum": 2, "insert_quorum_timeout": 500}))
	err := serverConn(t, c, 0, db).Exec(quorum, "INSERT INTO readings_by_day_local (org_id, meter_key, customer_id, event_id, time) "+
		"SELECT 'org_pending', 'm', 'customer', 'event', toDateTime('2026-10-15 00:00:00', 'UTC')")
	if ex := (*clickhouse.Exception)(nil); !errors.As(err, &ex) || ex.Code != 319 {
		t.Fatalf("a quorum insert on shard 1 while its replica 2 does not fetch: %v, want code 319 (its quorum pending)", err)
	}

	// Replica 2 fetches again once the copy has been refused; the
	// pending quorum is reached when it has fetched the part.
	watch := &refusalWatch{Conn: admin, insert: "\nINSERT INTO " + db + ".readings_by_day (", refused: make(chan struct{})}
	unblockCtx, stopUnblock := context.WithCancel(ctx)
	var unblocked sync.WaitGroup
	unblocked.Go(func() {
		select {
		case <-unblockCtx.Done():
			return
		case <-watch.refused:
		}
		for _, stmt := range []string{"SYSTEM START FETCHES ", "SYSTEM SYNC REPLICA "} {
			if err := replica2.Exec(ctx, stmt+db+".readings_by_day_local"); err != nil {
				t.Errorf("%s on %s: %v", stmt, c.addrs[1], err)
			}
		}
	})
	began := time.Now()
	_, err = chclient.MigrateWith(ctx, watch, db, chclient.MigrateOptions{Cluster: c.name})
	stopUnblock()
	unblocked.Wait()
	if err != nil {
		t.Fatalf("Migrate while shard 1's quorum for readings_by_day is pending: %v", err)
	}
	if got := watch.refusals.Load(); got == 0 {
		t.Fatal("the copy into readings_by_day was never refused for the pending quorum: the test did not exercise the retry")
	}
	t.Logf("the copy was refused %d times; the migrations took %v", watch.refusals.Load(), time.Since(began).Round(time.Millisecond))

	syncReplicas(t, c, db, "readings_by_day_local")
	for i := range c.addrs {
		conn := serverConn(t, c, i, db)
		readings := count(t, conn, "SELECT count() FROM readings_local FINAL WHERE org_id = 'org_1'")
		if got := count(t, conn, "SELECT count() FROM readings_by_day_local FINAL WHERE org_id = 'org_1'"); got != readings {
			t.Errorf("%s: %d rows in readings_by_day_local, %d in readings_local", c.addrs[i], got, readings)
		}
		if got := count(t, conn, "SELECT count() FROM readings_by_day FINAL WHERE org_id = 'org_1'"); got != n {
			t.Errorf("%s: readings_by_day FINAL counts %d readings, want %d", c.addrs[i], got, n)
		}
		if got := count(t, conn, "SELECT uniqExact(event_id) FROM readings_by_day FINAL WHERE org_id = 'org_1'"); got != n {
			t.Errorf("%s: readings_by_day FINAL holds %d distinct readings, want %d", c.addrs[i], got, n)
		}
	}
}

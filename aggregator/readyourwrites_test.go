package aggregator

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/chserver"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

// TestReadYourWritesBehindBalancer runs the aggregator against two
// ClickHouse servers that share nothing, behind a TCP balancer that sends
// each new connection to the next server: the worst case of a pool of
// connections to replicas whose replication lags, or of a cloud service
// behind a load balancer. The first-version lookup of a batch must see the
// events the earlier batches of its partition inserted, so it must run on
// the connection (the server) those inserts used. Then every later version
// of an identity is a duplicate, and each event is counted once, with the
// value of its first version, on whichever server its partition wrote to.
//
// With insert_quorum and select_sequential_consistency set, the same holds:
// ClickHouse 18.16 accepts both on plain MergeTree tables, where they
// change nothing.
func TestReadYourWritesBehindBalancer(t *testing.T) {
	t.Run("pinned", func(t *testing.T) { testReadYourWrites(t, chclient.Config{}) })
	t.Run("insert quorum", func(t *testing.T) {
		testReadYourWrites(t, chclient.Config{InsertQuorum: 2, SequentialConsistency: true})
	})
}

func testReadYourWrites(t *testing.T, settings chclient.Config) {
	const (
		partitions = 4
		customers  = 16
		ids        = 64 // per round; every round re-sends the same ids
		rounds     = 4  // the first writes first versions, the others duplicates
		maxConns   = 3  // fewer sessions than partitions: two share one
	)
	e := newEnv(t, partitions)
	serverB := secondServer(t, e.db)
	bal := newBalancer(t, e.addr, serverB)
	ch := settings
	ch.Addr, ch.User, ch.Database, ch.DialTimeout, ch.MaxOpenConns = bal.Addr(), "default", e.db, 5*time.Second, maxConns
	conn, err := ch.Open(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	// Meters are read from server A only: this test is about events.
	e.createMeter(testOrg, `{"key":"calls","event_type":"api","aggregation":"SUM","value_property":"n"}`)

	cfg := withGroup(testConfig(), t)
	cfg.Backfill = false // no meter is created while it runs
	run := e.startWith(cfg, Deps{ClickHouse: conn, Meters: e.meters})
	for round := range rounds {
		recs := make([]schemas.Record, ids)
		for i := range recs {
			// Round 0 sends n=1, every later version n=1000+round.
			n := 1
			if round > 0 {
				n = 1000 + round
			}
			recs[i] = event(fmt.Sprintf("c%d", i%customers), fmt.Sprintf("e%d", i), "api", t0, fmt.Sprintf(`{"n":%d}`, n))
		}
		e.produce(recs...)
		// A round's records are committed before the next is produced, so
		// every duplicate is in a later batch than its first version.
		e.waitCommitted(cfg.GroupID)
	}

	// Each event's readings, from both servers.
	values := map[string]map[string]bool{}
	for _, addr := range []string{e.addr, serverB} {
		c := testenv.Conn(t, addr, e.db)
		rows, err := c.Query(e.ctx, `SELECT event_id, toString(value) FROM readings FINAL WHERE meter_key = 'calls'`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, v string
			if err := rows.Scan(&id, &v); err != nil {
				t.Fatal(err)
			}
			if values[id] == nil {
				values[id] = map[string]bool{}
			}
			values[id][strings.TrimRight(strings.TrimRight(v, "0"), ".")] = true
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	var wrong []string
	for i := range ids {
		id := fmt.Sprintf("e%d", i)
		var got []string
		for v := range values[id] {
			got = append(got, v)
		}
		sort.Strings(got)
		if len(got) != 1 || got[0] != "1" {
			wrong = append(wrong, fmt.Sprintf("%s=%v", id, got))
		}
	}
	t.Logf("balancer sent %v connections to servers A and B", bal.Counts())
	if len(wrong) > 0 {
		t.Errorf("%d of %d events are not counted once with their first version's value 1 (a later version was taken for new): %s",
			len(wrong), ids, strings.Join(wrong, " "))
	}
	// Sessions are bounded by the pool's size, and none reconnected.
	if n := metricValue(t, run.reg, "tally_aggregator_clickhouse_session_connects_total", nil); n != maxConns {
		t.Errorf("sessions opened %v connections, want %d (one per session, at most clickhouse.max-open-conns)", n, maxConns)
	}
}

// secondServer starts a ClickHouse server of this test only, with
// Tally's schema in database, and returns its address.
func secondServer(t *testing.T, database string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := chserver.Start(ctx, chserver.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	if _, err := chclient.Migrate(ctx, testenv.Conn(t, srv.Addr(), "default"), database); err != nil {
		t.Fatal(err)
	}
	return srv.Addr()
}

// balancer forwards each new TCP connection to the next of its targets in
// turn, like a load balancer in front of replicas.
type balancer struct {
	targets []string
	ln      net.Listener

	mu     sync.Mutex
	next   int
	counts []int
}

func newBalancer(t testing.TB, targets ...string) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{targets: targets, ln: ln, counts: make([]int, len(targets))}
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() { b.accept(done, &wg) })
	t.Cleanup(func() {
		close(done)
		_ = ln.Close()
		wg.Wait()
	})
	return b
}

func (b *balancer) Addr() string { return b.ln.Addr().String() }

// Counts returns how many connections went to each target.
func (b *balancer) Counts() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.counts...)
}

func (b *balancer) accept(done chan struct{}, wg *sync.WaitGroup) {
	for {
		client, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		i := b.next
		b.next = (b.next + 1) % len(b.targets)
		b.counts[i]++
		b.mu.Unlock()
		wg.Go(func() { pipe(done, client, b.targets[i]) })
	}
}

// pipe copies both ways between client and a new connection to target
// until either side closes or done is closed.
func pipe(done chan struct{}, client net.Conn, target string) {
	defer client.Close()
	server, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer server.Close()
	copied := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(server, client); copied <- struct{}{} }()
	go func() { _, _ = io.Copy(client, server); copied <- struct{}{} }()
	select {
	case <-copied:
	case <-done:
	}
}

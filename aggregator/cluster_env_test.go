package aggregator

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/internal/kafkaclient"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/internal/testenv"
)

// Helpers of the cluster tests (testenv's shared 2x2 cluster).

// newClickHouseClusterEnv is the env of a cluster test: the test's Kafka topic and
// dead-letter topic of one partition, a writer producing to the topic,
// and conn (a service's pool through the server at addr) for db.
func newClickHouseClusterEnv(t *testing.T, addr, db string, conn driver.Conn) *env {
	t.Helper()
	brokers := testenv.Kafka(t)
	testenv.CreateTopic(t, brokers, testTopic, 1)
	testenv.CreateTopic(t, brokers, testDeadLetter, 1)
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: testTopic, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	t.Cleanup(func() { _ = w.Close() })
	return &env{t: t, ctx: t.Context(), addr: addr, db: db, conn: conn, meters: meterstore.New(conn), writer: w, parts: 1,
		kafka: &kafkaclient.Config{Brokers: brokers, Topic: testTopic, DeadLetterTopic: testDeadLetter, Partitions: 1, ReplicationFactor: 1}}
}

func exec(t *testing.T, conn driver.Conn, query string) {
	t.Helper()
	// Not t.Context(): cleanups run after it is canceled.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := conn.Exec(ctx, query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func count(t *testing.T, conn driver.Conn, query string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(t.Context(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// acceptLayout records shards of weights as cluster's accepted layout at
// at, as an operator's INSERT into cluster_layout would.
func acceptLayout(t *testing.T, conn driver.Conn, cluster string, shards uint32, weights []uint32, at time.Time) {
	t.Helper()
	batch, err := conn.PrepareBatch(t.Context(), "INSERT INTO cluster_layout (cluster, shards, weights, recorded_at)")
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.Append(cluster, shards, weights, at); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}

// layoutTest is an aggregator of the layout-guard tests running on a
// migrated cluster database (conn through all four servers, cluster name)
// with the meter "calls", e1 metered and committed.
type layoutTest struct {
	e    *env
	r    *running
	cfg  Config
	conn driver.Conn
	name string
}

func startLayoutTest(t *testing.T, backfill bool) layoutTest {
	t.Helper()
	cdb := testenv.NewMigratedClusterDatabase(t)
	chCfg := cdb.Config(0, 4)
	// Open records the cluster's layout: 2 shards of weight 1.
	conn := cdb.Open(t, 0, 4)
	e := newClickHouseClusterEnv(t, cdb.Addrs[0], cdb.Database, conn)
	e.createMeter(testOrg, `{"key":"calls","event_type":"api","aggregation":"SUM","value_property":"n"}`)
	cfg := withGroup(testConfig(), t)
	cfg.Backfill = backfill
	r := e.startWith(cfg, Deps{ClickHouse: conn, ClickHouseConfig: chCfg})
	e.produce(event("c1", "e1", "api", t0, `{"n":1}`))
	e.waitCommitted(cfg.GroupID)
	return layoutTest{e: e, r: r, cfg: cfg, conn: conn, name: cdb.Name}
}

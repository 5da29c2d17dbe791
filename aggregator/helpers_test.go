package aggregator

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/internal/kafkaclient"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	testTopic      = "events"
	testDeadLetter = "events-dead-letter"
	testOrg        = "acme"
	waitTimeout    = 90 * time.Second
)

// env is one test's pipeline: its own database, broker, topics and group.
type env struct {
	t      testing.TB
	ctx    context.Context
	addr   string
	db     string
	conn   driver.Conn
	meters *meterstore.Store
	kafka  *kafkaclient.Config
	writer *kafka.Writer
	parts  int
	sent   int // records produced to the event topic
}

func newEnv(t testing.TB, partitions int) *env {
	t.Helper()
	ctx := t.Context()
	addr, db := testenv.NewMigratedDatabase(t)
	conn := testenv.Conn(t, addr, db)
	brokers := testenv.Kafka(t)
	testenv.CreateTopic(t, brokers, testTopic, partitions)
	testenv.CreateTopic(t, brokers, testDeadLetter, 1)
	w := &kafka.Writer{
		Addr: kafka.TCP(brokers...), Topic: testTopic, RequiredAcks: kafka.RequireAll,
		Balancer: &kafka.Hash{}, BatchTimeout: 5 * time.Millisecond, BatchSize: 10_000, BatchBytes: 1 << 20, // kfake's default max message bytes
	}
	t.Cleanup(func() { _ = w.Close() })
	return &env{
		t: t, ctx: ctx, addr: addr, db: db, conn: conn, meters: meterstore.New(conn), writer: w, parts: partitions,
		kafka: &kafkaclient.Config{Brokers: brokers, Topic: testTopic, DeadLetterTopic: testDeadLetter,
			Partitions: partitions, ReplicationFactor: 1},
	}
}

// testConfig is fast to react: short linger, retries and group timeouts.
func testConfig() Config {
	c := DefaultConfig()
	c.ListenAddr = "127.0.0.1:0"
	c.GroupID = "test-aggregator"
	c.BatchLinger = 20 * time.Millisecond
	c.RetryInitialInterval = 20 * time.Millisecond
	c.RetryMaxInterval = 200 * time.Millisecond
	c.HeartbeatInterval = 250 * time.Millisecond
	c.SessionTimeout = 6 * time.Second // the least Kafka (and kfake) accept by default
	c.RebalanceTimeout = 3 * time.Second
	c.DrainTimeout = 5 * time.Second
	return c
}

func testLogger() *slog.Logger {
	if os.Getenv("TALLY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// event builds a record of testOrg.
func event(customer, id, typ string, at time.Time, props string) schemas.Record {
	return schemas.Record{
		OrgID:      testOrg,
		Event:      schemas.Event{ID: id, Type: typ, CustomerID: customer, Time: at, Properties: json.RawMessage(props)},
		IngestedAt: time.Now().UTC(),
	}
}

func (e *env) produce(recs ...schemas.Record) {
	e.t.Helper()
	msgs := make([]kafka.Message, len(recs))
	for i, r := range recs {
		key, value, err := schemas.EncodeRecord(r)
		if err != nil {
			e.t.Fatal(err)
		}
		msgs[i] = kafka.Message{Key: key, Value: value}
	}
	e.produceMessages(msgs...)
}

func (e *env) produceMessages(msgs ...kafka.Message) {
	e.t.Helper()
	if err := e.writer.WriteMessages(e.ctx, msgs...); err != nil {
		msg := err.Error()
		if len(msg) > 500 {
			msg = msg[:500] + "…" // one line per failed record otherwise
		}
		e.t.Fatalf("produce: %s", msg)
	}
	e.sent += len(msgs)
}

func (e *env) createMeter(org, definition string) schemas.Meter {
	e.t.Helper()
	m, err := schemas.ParseMeter([]byte(definition))
	if err != nil {
		e.t.Fatalf("meter %s: %v", definition, err)
	}
	m, err = e.meters.Create(e.ctx, org, m)
	if err != nil {
		e.t.Fatalf("create meter: %v", err)
	}
	return m
}

// running is a started Service.
type running struct {
	svc  *Service
	reg  *prometheus.Registry
	stop context.CancelFunc
	done chan error
}

func (e *env) start(cfg Config) *running {
	e.t.Helper()
	return e.startWith(cfg, Deps{ClickHouse: e.conn})
}

func (e *env) startWith(cfg Config, deps Deps) *running {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	if deps.Kafka == nil {
		deps.Kafka = e.kafka
	}
	deps.Logger, deps.Registerer, deps.Gatherer = testLogger(), reg, reg
	svc, err := New(cfg, deps)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := svc.Listen(); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{svc: svc, reg: reg, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- svc.Run(ctx) }()
	e.t.Cleanup(func() { r.shutdown(e.t) })
	return r
}

// shutdown stops the service and waits for Run; safe to call twice.
func (r *running) shutdown(t testing.TB) {
	t.Helper()
	r.stop()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return within 60s of cancel")
	}
}

// waitFor polls cond until it holds or the deadline passes.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitCommitted waits until the group has committed every record produced,
// so that nothing still in flight could add rows after the checks.
func (e *env) waitCommitted(group string) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("group %s to commit %d records", group, e.sent), func() bool {
		return e.committed(group) == int64(e.sent)
	})
}

func (e *env) committed(group string) int64 {
	e.t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(e.kafka.Brokers...), Timeout: 5 * time.Second}
	parts := make([]int, e.parts)
	for i := range parts {
		parts[i] = i
	}
	resp, err := client.OffsetFetch(e.ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{testTopic: parts}})
	if err != nil {
		return -1
	}
	var sum int64
	for _, p := range resp.Topics[testTopic] {
		if p.CommittedOffset > 0 {
			sum += p.CommittedOffset
		}
	}
	return sum
}

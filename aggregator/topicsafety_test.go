package aggregator

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tally-oss/tally/internal/kafkaclient"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/internal/testenv"
)

// newClusterEnv is newEnv on a broker whose control methods the test can
// call (DeleteRecords), as an operator or a retention policy would.
func newClusterEnv(t *testing.T, partitions int) (*env, *kfake.Cluster) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()
	addr, db := testenv.NewMigratedDatabase(t)
	conn := testenv.Conn(t, addr, db)
	testenv.CreateTopic(t, brokers, testTopic, partitions)
	testenv.CreateTopic(t, brokers, testDeadLetter, 1)
	w := &kafka.Writer{
		Addr: kafka.TCP(brokers...), Topic: testTopic, RequiredAcks: kafka.RequireAll,
		Balancer: &kafka.Hash{}, BatchTimeout: 5 * time.Millisecond, BatchSize: 10_000, BatchBytes: 1 << 20,
	}
	t.Cleanup(func() { _ = w.Close() })
	return &env{
		t: t, ctx: t.Context(), addr: addr, db: db, conn: conn, meters: meterstore.New(conn), writer: w, parts: partitions,
		kafka: &kafkaclient.Config{Brokers: brokers, Topic: testTopic, DeadLetterTopic: testDeadLetter,
			Partitions: partitions, ReplicationFactor: 1},
	}, cluster
}

func readyz(t testing.TB, r *running) (int, string) {
	t.Helper()
	return httpGet(t, r.svc.Addr(), "/readyz")
}

// meterAndStop meters 5 events of customer c1 at offsets 0..4 through an
// aggregator of cfg's group, which commits them and stops.
func (e *env) meterAndStop(cfg Config) {
	for i := range 5 {
		e.produce(event("c1", fmt.Sprintf("before-%d", i), "api_call", t0, `{}`))
	}
	r := e.start(cfg)
	e.waitCommitted(cfg.GroupID)
	r.shutdown(e.t)
}

// halt is how partition 0 must look once the aggregator halted it.
type halt struct {
	what      string   // what readiness explains, for the wait's message
	readiness string   // in readiness's answer, with "partition 0"
	reason    string   // the tally_aggregator_halted_partitions reason
	says      []string // also in readiness's answer
	committed int64    // the group's committed offset, kept
	kept      string   // why it is kept there
	readings  string   // why the 5 readings of meterAndStop are all there are
}

// expectHalted waits until r halts partition 0 as h says, then checks the
// metrics, readiness, the kept commit and the readings of meter calls.
func (e *env) expectHalted(r *running, cfg Config, h halt) {
	t := e.t
	t.Helper()
	e.waitFor("readiness to explain "+h.what, func() bool {
		code, body := readyz(t, r)
		return code == 503 && strings.Contains(body, "partition 0") && strings.Contains(body, h.readiness)
	})
	e.waitFor("the partition to be halted", func() bool {
		return metricValue(t, r.reg, "tally_aggregator_halted_partitions", map[string]string{"reason": h.reason}) == 1
	})
	if got := metricValue(t, r.reg, "tally_aggregator_offset_out_of_range_total", map[string]string{"partition": "0"}); got < 1 {
		t.Errorf("tally_aggregator_offset_out_of_range_total{partition=0} = %v, want at least 1", got)
	}
	_, body := readyz(t, r)
	for _, want := range h.says {
		if !strings.Contains(body, want) {
			t.Errorf("readiness %s does not say %q", body, want)
		}
	}
	if got := e.committed(cfg.GroupID); got != h.committed {
		t.Errorf("committed offset %d, want %d (%s)", got, h.committed, h.kept)
	}
	if n := len(e.readings("calls")); n != 5 {
		t.Errorf("%d readings, want %s", n, h.readings)
	}
}

// Defect 2: records deleted from Kafka before the group consumed them
// (retention, DeleteRecords) must not be skipped silently. kafka-go's
// Reader moves an out-of-range position to the log start without telling
// anyone; the aggregator instead stops consuming the partition at its
// committed offset, counts it and fails readiness with an explanation.
func TestOffsetOutOfRangeIsAnAlarm(t *testing.T) {
	e, cluster := newClusterEnv(t, 1)
	e.createMeter(testOrg, `{"key":"calls","event_type":"api_call","aggregation":"COUNT"}`)
	cfg := withGroup(testConfig(), t)
	e.meterAndStop(cfg)

	// Offsets 5..14; 5..9 are deleted before anyone consumed them.
	for i := range 10 {
		e.produce(event("c1", fmt.Sprintf("after-%d", i), "api_call", t0, `{}`))
	}
	if err := cluster.DeleteRecords(testTopic, 0, 10); err != nil {
		t.Fatal(err)
	}

	r := e.start(cfg)
	// The position is kept, and the records after the gap are not metered.
	e.expectHalted(r, cfg, halt{what: "the deleted records", readiness: "deleted", reason: "offset_out_of_range",
		says: []string{"offset 5", "log starts at 10", "--reset-offsets"}, committed: 5, kept: "kept where the gap starts",
		readings: "the 5 from before the gap (after it: nothing, not silently skipped to)"})
}

// Defect 3: adding partitions to the event topic moves keys, so versions
// of one identity could be consumed in parallel from two partitions. The
// aggregator records the partition count it first sees and stops
// consuming, with readiness red, when the topic's count differs.
func TestAddedPartitionsStopConsuming(t *testing.T) {
	e := newEnv(t, 3)
	e.createMeter(testOrg, `{"key":"calls","event_type":"api_call","aggregation":"COUNT"}`)
	cfg := withGroup(testConfig(), t)
	r := e.start(cfg)
	for i := range 30 {
		e.produce(event(fmt.Sprintf("c%d", i), "e", "api_call", t0, `{}`))
	}
	e.waitCommitted(cfg.GroupID)
	if code, body := readyz(t, r); code != 200 {
		t.Fatalf("readiness before the change: %d %s", code, body)
	}

	client := &kafka.Client{Addr: kafka.TCP(e.kafka.Brokers...), Timeout: 5 * time.Second}
	resp, err := client.CreatePartitions(e.ctx, &kafka.CreatePartitionsRequest{Topics: []kafka.TopicPartitionsConfig{{Name: testTopic, Count: 5}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Errors[testTopic]; err != nil {
		t.Fatal(err)
	}
	e.waitFor("readiness to explain the partition change", func() bool {
		code, body := readyz(t, r)
		return code == 503 && strings.Contains(body, "5 partitions") && strings.Contains(body, "3 ")
	})
	// Every partition this member holds stops, new ones included.
	e.waitFor("all five partitions held and halted", func() bool {
		return metricValue(t, r.reg, "tally_aggregator_assigned_partitions", nil) == 5 &&
			metricValue(t, r.reg, "tally_aggregator_halted_partitions", map[string]string{"reason": "partition_count_changed"}) == 5
	})
	if got := metricValue(t, r.reg, "tally_aggregator_event_topic_partitions", map[string]string{"source": "recorded"}); got != 3 {
		t.Errorf("recorded partitions metric = %v, want 3", got)
	}
	before := e.committed(cfg.GroupID)
	for i := range 30 {
		e.produce(event(fmt.Sprintf("c%d", i), "later", "api_call", t0, `{}`))
	}
	// Not consumed: the loops have stopped. Restarting does not resume
	// either: the recorded count is durable.
	r.shutdown(t)
	r = e.start(cfg)
	e.waitFor("readiness red again after a restart", func() bool {
		code, body := readyz(t, r)
		return code == 503 && strings.Contains(body, "5 partitions")
	})
	e.waitFor("halted after the restart", func() bool {
		return metricValue(t, r.reg, "tally_aggregator_halted_partitions", map[string]string{"reason": "partition_count_changed"}) == 5
	})
	if after := e.committed(cfg.GroupID); after != before {
		t.Errorf("committed %d records after the change, want none (%d before)", after, before)
	}
	if n := len(e.readings("calls")); n != 30 {
		t.Errorf("%d readings, want the 30 from before the change", n)
	}

	// An operator who accepts the new count records it; consumption resumes.
	batch, err := e.conn.PrepareBatch(e.ctx, "INSERT INTO event_topic_partitions (topic, partitions, recorded_at)")
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.Append(testTopic, uint32(5), time.Now().UTC().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	e.parts = 5
	e.waitCommitted(cfg.GroupID)
	if n := len(e.readings("calls")); n != 60 {
		t.Errorf("%d readings after the new count was accepted, want 60", n)
	}
	if code, body := readyz(t, r); code != 200 {
		t.Errorf("readiness after the new count was accepted: %d %s", code, body)
	}
}

// Defect 8: a batch is bounded in bytes as well as in records, so that a
// backlog of large records cannot make one batch (and the rows built from
// it) exceed memory. Nothing is lost or reordered at the cut.
func TestBatchBoundedInBytes(t *testing.T) {
	e := newEnv(t, 1)
	const n, size = 40, 200 << 10
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte("k"), Value: []byte(strings.Repeat("x", size))}
	}
	for _, m := range msgs {
		e.produceMessages(m)
	}
	cfg := testConfig()
	cfg.BatchMaxBytes = 1 << 20
	reg := prometheus.NewRegistry()
	c := &consumer{cfg: cfg, kafka: e.kafka, logger: testLogger(), state: newConsumerState(time.Minute, newMetrics(reg), newSafetyMetrics(reg))}
	reader := kafka.NewReader(c.readerConfig(0))
	defer reader.Close()
	var next int64
	var f fetcher
	for next < n {
		batch := c.fetchBatch(e.ctx, reader, &f, testLogger())
		var bytes int
		for _, m := range batch {
			if m.Offset != next {
				t.Fatalf("offset %d, want %d", m.Offset, next)
			}
			next++
			bytes += messageBytes(m)
		}
		if bytes > cfg.BatchMaxBytes {
			t.Fatalf("a batch of %d records has %d bytes, more than the %d allowed", len(batch), bytes, cfg.BatchMaxBytes)
		}
	}
}

func TestFirstGap(t *testing.T) {
	msgs := func(offsets ...int64) []kafka.Message {
		out := make([]kafka.Message, len(offsets))
		for i, o := range offsets {
			out[i].Offset = o
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		batch      []kafka.Message
		next       int64
		wantAt     int
		wantOffset int64
	}{
		{"contiguous", msgs(5, 6, 7), 5, -1, 8},
		{"unknown start", msgs(9, 10), -1, -1, 11},
		{"gap at the start", msgs(10, 11), 5, 0, 5},
		{"gap inside", msgs(5, 6, 9, 10), 5, 2, 7},
		{"gap inside, unknown start", msgs(3, 4, 8), -1, 2, 5},
	} {
		at, offset := firstGap(tc.batch, tc.next)
		if at != tc.wantAt || (at >= 0 && offset != tc.wantOffset) || (at < 0 && offset != tc.wantOffset) {
			t.Errorf("%s: firstGap = %d, %d; want %d, %d", tc.name, at, offset, tc.wantAt, tc.wantOffset)
		}
	}
}

// Defect 2, aggregator side: an event topic with the cluster's default
// retention (7 days) turns readiness red with the setting to change and is
// logged at start; consumption goes on, since stopping would only let more
// records expire.
func TestUnsafeEventTopicFailsReadiness(t *testing.T) {
	e := newEnv(t, 1)
	e.createMeter(testOrg, `{"key":"calls","event_type":"api_call","aggregation":"COUNT"}`)
	unsafe := *e.kafka
	unsafe.Topic = "events-with-retention"
	client := &kafka.Client{Addr: kafka.TCP(e.kafka.Brokers...), Timeout: 5 * time.Second}
	resp, err := client.CreateTopics(e.ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: unsafe.Topic, NumPartitions: 1, ReplicationFactor: 1}, // the cluster's defaults
	}})
	if err != nil || resp.Errors[unsafe.Topic] != nil {
		t.Fatalf("create topic: %v %v", err, resp.Errors)
	}
	e.writer.Topic = unsafe.Topic
	e.produce(event("c1", "e1", "api_call", t0, `{}`))

	var logs testenv.SyncBuffer
	cfg := withGroup(testConfig(), t)
	reg := prometheus.NewRegistry()
	svc, err := New(cfg, Deps{Kafka: &unsafe, ClickHouse: e.conn, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Registerer: reg, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	r := &running{svc: svc, reg: reg}

	e.waitFor("the record metered anyway", func() bool { return len(e.readings("calls")) == 1 })
	code, body := readyz(t, r)
	if code != 503 || !strings.Contains(body, "retention.ms=604800000") || !strings.Contains(body, "retention.ms=-1") {
		t.Errorf("readiness with a 7-day retention = %d %s, want 503 naming retention.ms", code, body)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "retention.ms=604800000") {
		t.Errorf("no error logged about the retention:\n%s", logs.String())
	}
}

// Fault 7: a member whose assignment the coordinator no longer agrees
// with (not listed, or other partitions) rejoins instead of consuming
// partitions that may now be someone else's.
func TestGroupViewProblems(t *testing.T) {
	owned := func(ps ...int) map[int]bool {
		m := map[int]bool{}
		for _, p := range ps {
			m[p] = true
		}
		return m
	}
	for _, tc := range []struct {
		name        string
		view        groupView
		assigned    []int
		wantUnowned []int
		wantLost    bool
	}{
		{"agreed", groupView{stable: true, partitions: []int{0, 1, 2}, owned: owned(0, 1, 2), member: true, mine: []int{0, 2}}, []int{2, 0}, nil, false},
		{"idle member", groupView{stable: true, partitions: []int{0}, owned: owned(0), member: true}, nil, nil, false},
		{"rebalancing", groupView{}, []int{0}, nil, false},
		{"unowned partition", groupView{stable: true, partitions: []int{0, 1}, owned: owned(0), member: true, mine: []int{0}}, []int{0}, []int{1}, false},
		{"not listed any more", groupView{stable: true, partitions: []int{0, 1}, owned: owned(0, 1), mine: nil}, []int{1}, nil, true},
		{"other partitions", groupView{stable: true, partitions: []int{0, 1}, owned: owned(0, 1), member: true, mine: []int{0}}, []int{1}, nil, true},
	} {
		unowned, lost := tc.view.problems(tc.assigned)
		if !slices.Equal(unowned, tc.wantUnowned) || lost != tc.wantLost {
			t.Errorf("%s: problems = %v, %v; want %v, %v", tc.name, unowned, lost, tc.wantUnowned, tc.wantLost)
		}
	}
}

// Defect 2, while consuming: records deleted ahead of a running consumer
// (its batch stuck on ClickHouse) make kafka-go's Reader jump to the log
// start. The jump is found and the partition halts where the gap starts.
// Large records and the smallest fetch keep the Reader at most a few
// records ahead of the stuck batch, so the deletion lands beyond what it
// has read.
func TestOffsetOutOfRangeWhileConsuming(t *testing.T) {
	e, cluster := newClusterEnv(t, 1)
	e.createMeter(testOrg, `{"key":"calls","event_type":"api_call","aggregation":"COUNT"}`)
	proxy, conn := e.proxiedClickHouse()
	cfg := withGroup(testConfig(), t)
	cfg.FetchMaxBytes = 1 << 20 // a queue of one record
	cfg.BatchMaxBytes = 1 << 20
	r := e.startWith(cfg, Deps{ClickHouse: conn})
	pad := strings.Repeat("x", 300<<10)
	for i := range 5 {
		e.produce(event("c1", fmt.Sprintf("before-%d", i), "api_call", t0, `{}`))
	}
	e.waitCommitted(cfg.GroupID)

	proxy.SetUp(false)
	for i := range 40 { // offsets 5..44, about 300 KiB each
		e.produce(event("c1", fmt.Sprintf("big-%d", i), "api_call", t0, `{"pad":"`+pad+`"}`))
	}
	e.waitFor("the first big batch retrying", func() bool {
		return metricValue(t, r.reg, "tally_aggregator_retries_total", map[string]string{"operation": opLookupEvents}) > 0
	})
	if err := cluster.DeleteRecords(testTopic, 0, 35); err != nil {
		t.Fatal(err)
	}
	proxy.SetUp(true)

	e.waitFor("the partition halted at the gap", func() bool {
		return metricValue(t, r.reg, "tally_aggregator_halted_partitions", map[string]string{"reason": "offset_out_of_range"}) == 1
	})
	committed := e.committed(cfg.GroupID)
	if committed <= 5 || committed >= 35 {
		t.Fatalf("committed offset %d, want where the gap starts, between 5 and 35", committed)
	}
	_, body := readyz(t, r)
	if want := fmt.Sprintf("records from offset %d to 34 were deleted", committed); !strings.Contains(body, want) {
		t.Errorf("readiness %s does not say %q", body, want)
	}
	if n := int64(len(e.readings("calls"))); n != committed {
		t.Errorf("%d readings, want %d: every record before the gap, none after it", n, committed)
	}
}

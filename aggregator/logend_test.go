package aggregator

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tally-oss/tally/internal/kafkaclient"
	"github.com/tally-oss/tally/internal/testenv"
)

// Defect 2, the other end of the log: a committed offset beyond the log
// END (an unclean leader election that truncated the log, a topic deleted
// and created again under its name, a broker restored from an older disk).
// kafka-go's Reader answers OFFSET_OUT_OF_RANGE past the end by waiting
// for new messages, so the records produced at offsets below the commit
// would never be metered, with lag 0 and readiness green. The aggregator
// instead halts the partition at its committed offset and readiness
// explains it, as for records deleted before they were metered.
func TestCommittedBeyondLogEndIsAnAlarm(t *testing.T) {
	e, _ := newClusterEnv(t, 1)
	e.createMeter(testOrg, `{"key":"calls","event_type":"api_call","aggregation":"COUNT"}`)
	cfg := withGroup(testConfig(), t)
	e.meterAndStop(cfg)

	// The log is truncated below the group's commit: modelled by a commit
	// past the end (the group has no members now).
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafka.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	off := kadm.Offsets{}
	off.Add(kadm.Offset{Topic: testTopic, Partition: 0, At: 100, LeaderEpoch: -1})
	if err := kadm.NewClient(cl).CommitAllOffsets(e.ctx, cfg.GroupID, off); err != nil {
		t.Fatal(err)
	}
	// Accepted events at offsets 5..14, below the commit.
	for i := range 10 {
		e.produce(event("c1", fmt.Sprintf("after-%d", i), "api_call", t0, `{}`))
	}
	r := e.start(cfg)
	e.expectHalted(r, cfg, halt{what: "the truncated log", readiness: "beyond the end of the log", reason: "log_truncated",
		says: []string{"offset 100", "ends at offset 15", "--reset-offsets --to-earliest"}, committed: 100,
		kept: "kept for the operator to decide", readings: "the 5 metered before the truncation"})
}

// The log can also end before the position while a partition is held:
// here the topic is deleted and created again under its name while the
// aggregator waits for records at offset 5. The reader would wait for the
// new log to reach offset 5 and never meter offsets 0..4 of it; the idle
// check halts the partition instead.
func TestLogEndsBeforePositionWhileConsuming(t *testing.T) {
	e, _ := newClusterEnv(t, 1)
	e.createMeter(testOrg, `{"key":"calls","event_type":"api_call","aggregation":"COUNT"}`)
	cfg := withGroup(testConfig(), t)
	r := e.start(cfg)
	for i := range 5 {
		e.produce(event("c1", fmt.Sprintf("before-%d", i), "api_call", t0, `{}`))
	}
	e.waitCommitted(cfg.GroupID)
	if code, body := readyz(t, r); code != 200 {
		t.Fatalf("readiness before the topic is recreated: %d %s", code, body)
	}

	client := &kafka.Client{Addr: kafka.TCP(e.kafka.Brokers...), Timeout: 5 * time.Second}
	resp, err := client.DeleteTopics(e.ctx, &kafka.DeleteTopicsRequest{Topics: []string{testTopic}})
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range resp.Errors {
		if err != nil {
			t.Fatal(err)
		}
	}
	testenv.CreateTopic(t, e.kafka.Brokers, testTopic, 1)
	for i := range 3 { // offsets 0..2 of the new log
		e.produce(event("c1", fmt.Sprintf("after-%d", i), "api_call", t0, `{}`))
	}
	e.waitFor("readiness to explain the truncated log", func() bool {
		code, body := readyz(t, r)
		return code == 503 && strings.Contains(body, "partition 0") && strings.Contains(body, "offset 5") &&
			strings.Contains(body, "ends at offset 3")
	})
	if got := metricValue(t, r.reg, "tally_aggregator_halted_partitions", map[string]string{"reason": "log_truncated"}); got != 1 {
		t.Errorf("tally_aggregator_halted_partitions{reason=log_truncated} = %v, want 1", got)
	}
	if n := len(e.readings("calls")); n != 5 {
		t.Errorf("%d readings, want the 5 of the old log", n)
	}
}

// A broker's answer during a leader change can be stale: one low log end
// is not an alarm, the same answer three times (logEndRecheckDelay apart)
// is. The broker here answers ListOffsets through kfake's control hook.
func TestStaleLogEndIsNotAnAlarm(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()
	testenv.CreateTopic(t, brokers, testTopic, 1)
	var mu sync.Mutex
	var ends []int64 // the log ends the broker answers, in turn; the last one stays
	cluster.ControlKey(int16(kmsg.ListOffsets), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		mu.Lock()
		end := ends[0]
		if len(ends) > 1 {
			ends = ends[1:]
		}
		mu.Unlock()
		lreq := req.(*kmsg.ListOffsetsRequest)
		resp := lreq.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range lreq.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition, sp.Timestamp, sp.Offset = rp.Partition, -1, end
				if rp.Timestamp == -2 { // the log start
					sp.Offset = 0
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	c := &consumer{cfg: Config{GroupID: "g"}, kafka: &kafkaclient.Config{Brokers: brokers, Topic: testTopic}, logger: slog.Default()}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second}
	for _, tc := range []struct {
		name      string
		ends      []int64
		truncated bool
	}{
		{"at the log end", []int64{5}, false},
		{"stale once", []int64{0, 7}, false},
		{"stale twice", []int64{0, 0, 7}, false},
		{"low three times", []int64{3}, true},
	} {
		mu.Lock()
		ends = tc.ends
		mu.Unlock()
		got := c.beyondLogEnd(t.Context(), client, 0, 5)
		if (got != nil) != tc.truncated {
			t.Errorf("%s: beyondLogEnd(5) = %v, want truncated %v", tc.name, got, tc.truncated)
		}
		if got != nil && (got.position != 5 || got.logEnd != 3) {
			t.Errorf("%s: %+v, want position 5, log end 3", tc.name, got)
		}
	}
	// Before positioning, the same confirmation applies.
	mu.Lock()
	ends = []int64{0, 9}
	mu.Unlock()
	if err := c.checkPosition(t.Context(), client, 0, 5); err != nil {
		t.Errorf("checkPosition(5) with one stale answer: %v", err)
	}
}

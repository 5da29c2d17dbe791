package ingest

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/testenv"
)

// Issue 6, defect 5: an answer must not be given while the writer still
// holds the batch. kafka-go's WriteMessages returns as soon as its context
// ends, and its writer goes on retrying the batch for up to MaxAttempts:
// a request answered 503 could be written afterwards, and a corrected
// re-send of the same ids would then be the second version, ignored.

// produceWatch counts the produce requests a kfake broker receives and
// how many of them have been answered.
type produceWatch struct {
	mu                sync.Mutex
	started, finished int
}

func (w *produceWatch) counts() (started, finished int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.started, w.finished
}

// watchedBroker starts a kfake broker with topic events whose produce
// requests go through control: it returns the response to send, or nil to
// let the broker handle the request normally.
func watchedBroker(t *testing.T, control func(c *kfake.Cluster, n int, req *kmsg.ProduceRequest) kmsg.Response) ([]string, *produceWatch) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	testenv.CreateTopic(t, brokers, "events", 1)
	w := &produceWatch{}
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		w.mu.Lock()
		w.started++
		n := w.started
		w.mu.Unlock()
		resp := control(c, n, req.(*kmsg.ProduceRequest))
		w.mu.Lock()
		w.finished++
		w.mu.Unlock()
		return resp, nil, resp != nil
	})
	return brokers, w
}

// produceError answers every partition of req with a retriable error.
func produceError(req *kmsg.ProduceRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = 19 // NOT_ENOUGH_REPLICAS: retriable
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// TestPublishWaitsForTheBatchWhenTheCallerGivesUp: the broker delays its
// acknowledgement; the caller's context ends meanwhile; Publish returns
// only once the broker has answered, with that answer.
func TestPublishWaitsForTheBatchWhenTheCallerGivesUp(t *testing.T) {
	produceStarted := make(chan struct{})
	brokers, watch := watchedBroker(t, func(c *kfake.Cluster, n int, _ *kmsg.ProduceRequest) kmsg.Response {
		if n == 1 {
			close(produceStarted)
			c.SleepControl(func() { time.Sleep(time.Second) }) // slower than the caller's patience
		}
		return nil
	})
	cfg := testConfig()
	p := newKafkaPublisher(kafkaConfig(brokers, "events"), cfg)
	t.Cleanup(func() { _ = p.Close() })

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-produceStarted
		cancel() // the client hung up, or a deadline passed
	}()
	err := p.Publish(ctx, []kafka.Message{{Key: []byte("acme/c1"), Value: []byte(`{}`)}})
	started, finished := watch.counts()
	if finished < started || started == 0 {
		t.Fatalf("Publish returned (%v) while the broker still handled %d of %d produce requests: the batch was not settled", err, started-finished, started)
	}
	if err != nil {
		t.Errorf("Publish: %v; the broker acknowledged the batch", err)
	}
}

// TestNoProduceAfterTheAnswer: the broker refuses the first produce
// attempts with a retriable error. Whatever the answer, the writer has
// finished with the batch when it is given: closing the writer afterwards
// sends nothing more.
func TestNoProduceAfterTheAnswer(t *testing.T) {
	for _, tt := range []struct {
		name     string
		failures int // produce attempts refused before the broker accepts
		wantCode int
	}{
		{"retries exhausted", 100, 503},
		{"a retry succeeds", 2, 202},
	} {
		t.Run(tt.name, func(t *testing.T) {
			brokers, watch := watchedBroker(t, func(_ *kfake.Cluster, n int, req *kmsg.ProduceRequest) kmsg.Response {
				if n <= tt.failures {
					return produceError(req)
				}
				return nil
			})
			cfg := testConfig()
			// Shorter than the writer's backoff between its retries, so
			// that an answer bounded by a timeout rather than by the
			// writer comes while the writer still holds the batch.
			cfg.ProduceTimeout = 1500 * time.Millisecond
			s := newTestService(t, cfg, Deps{Kafka: kafkaConfig(brokers, "events")})
			code, body := serve(s.Handler(), request{body: array(event("e1", "c1"), event("e2", "c1"))})
			started, finished := watch.counts()
			if err := s.closePublisher(); err != nil && code == 202 {
				t.Errorf("close: %v", err)
			}
			after, _ := watch.counts()
			if code != tt.wantCode {
				t.Errorf("status %d, want %d: %s", code, tt.wantCode, body)
			}
			if finished != started || after != started {
				t.Fatalf("answered %d after %d produce attempts (%d answered by the broker); the writer made %d in all: "+
					"it still held the batch when the answer was given", code, started, finished, after)
			}
			if code == 503 {
				checkHonest503(t, body)
			}
		})
	}
}

// checkHonest503 asserts a 503 says what it knows: the events may or may
// not have been recorded, and the same ids must be sent again unchanged.
func checkHonest503(t *testing.T, body []byte) {
	t.Helper()
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"may or may not have been recorded", "unchanged", "first version"} {
		if !strings.Contains(eb.Message, want) {
			t.Errorf("503 message %q lacks %q", eb.Message, want)
		}
	}
	if eb.Code != httpapi.CodeUnavailable {
		t.Errorf("503 code %q", eb.Code)
	}
}

// slowPublisher acknowledges after delay.
type slowPublisher struct{ delay time.Duration }

func (p slowPublisher) Publish(context.Context, []kafka.Message) error {
	time.Sleep(p.delay)
	return nil
}

// TestAnswerOutlastsTheServerWriteTimeout: a request that waits for the
// writer longer than the server's write timeout still gets its answer.
func TestAnswerOutlastsTheServerWriteTimeout(t *testing.T) {
	s := newTestService(t, testConfig(), Deps{Publisher: slowPublisher{delay: time.Second}})
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.Config.WriteTimeout = 200 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	code, body, err := tryPost(srv.URL, request{body: []byte(event("e1", "c1"))})
	if err != nil || code != 202 {
		t.Fatalf("status %d %s, err %v; want the 202 after the write timeout", code, body, err)
	}
}

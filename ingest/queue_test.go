package ingest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Review 6 of issue 6, defect 5: a request's wait for Kafka is bounded by
// ingest.produce-timeout. kafka-go's Writer produces one batch per
// partition at a time and closes a batch every BatchTimeout, so behind a
// slow or silent broker batches queue up and a request waits for every
// earlier batch of its partition plus its own: in an outage each queued
// batch costs a full produce-timeout. The publisher must neither hand
// records to Kafka that could no longer be answered in time nor answer
// before Kafka is done with the records it was given.

// blackholeBroker is a broker whose produce requests are never answered
// until the test ends (a broker that swallows requests). It counts the
// produce requests it received.
func blackholeBroker(t *testing.T) ([]string, *produceWatch) {
	t.Helper()
	release := make(chan struct{})
	brokers, watch := watchedBroker(t, func(c *kfake.Cluster, _ int, _ *kmsg.ProduceRequest) kmsg.Response {
		c.SleepControl(func() { <-release })
		return nil
	})
	// Registered after watchedBroker's cleanup, so it runs first: the
	// cluster can close once the held requests go on.
	t.Cleanup(func() { close(release) })
	return brokers, watch
}

// publishAsync publishes one record keyed for partition 0 (the topic has
// one partition) and sends the result to the returned channel.
func publishAsync(p Publisher, id string) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- p.Publish(context.Background(), []kafka.Message{{Key: []byte("acme/c1"), Value: []byte(`{"id":"` + id + `"}`)}})
	}()
	return done
}

// waitProduces waits until the broker has received n produce requests.
func waitProduces(t *testing.T, w *produceWatch, n int) {
	t.Helper()
	eventually(t, func() bool { started, _ := w.counts(); return started >= n })
}

// TestQueuedRecordsAreNotProducedAfterTheirDeadline: the broker swallows
// the first produce request. Requests arriving meanwhile queue behind it;
// they must be answered 503 without their records ever reaching the
// broker (the writer's queue must not outlive their answer), and the
// first is answered once its one produce request has timed out.
func TestQueuedRecordsAreNotProducedAfterTheirDeadline(t *testing.T) {
	brokers, watch := blackholeBroker(t)
	cfg := testConfig()
	cfg.ProduceTimeout = 2 * time.Second
	cfg.KafkaMaxAttempts = 1
	p := newKafkaPublisher(kafkaConfig(brokers, "events"), cfg)

	first := publishAsync(p, "e0")
	waitProduces(t, watch, 1) // the first batch is at the broker, unanswered
	var later []<-chan error
	for i := range 3 {
		later = append(later, publishAsync(p, "e"+string(rune('1'+i))))
	}
	if err := <-first; err == nil {
		t.Fatal("first request acknowledged by a broker that answers nothing")
	}
	for i, done := range later {
		if err := <-done; err == nil {
			t.Errorf("request %d acknowledged by a broker that answers nothing", i+1)
		}
	}
	// Every request has been answered: closing the publisher must not
	// send anything more, and nothing was sent for the queued requests.
	_ = p.Close()
	if started, _ := watch.counts(); started != 1 {
		t.Fatalf("the broker received %d produce requests; want 1 (the first request's): "+
			"records of requests that could no longer be answered in time were produced", started)
	}
}

// TestQueuedRequestsShareOneBatch: while a produce request is at the
// broker, the requests arriving for its partition wait for it together and
// go out as one produce request (group commit), so a request waits for at
// most one batch before its own.
func TestQueuedRequestsShareOneBatch(t *testing.T) {
	release := make(chan struct{})
	brokers, watch := watchedBroker(t, func(c *kfake.Cluster, n int, _ *kmsg.ProduceRequest) kmsg.Response {
		if n == 1 {
			c.SleepControl(func() { <-release })
		}
		return nil
	})
	cfg := testConfig()
	p := newKafkaPublisher(kafkaConfig(brokers, "events"), cfg)
	t.Cleanup(func() { _ = p.Close() })

	first := publishAsync(p, "e0")
	waitProduces(t, watch, 1)
	const queued = 5
	var later []<-chan error
	for i := range queued {
		later = append(later, publishAsync(p, "e"+string(rune('1'+i))))
	}
	eventually(t, func() bool { return p.queuedRecords() == queued })
	close(release)
	var wg sync.WaitGroup
	for i, done := range append(later, first) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := <-done; err != nil {
				t.Errorf("request %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if started, _ := watch.counts(); started != 2 {
		t.Errorf("%d produce requests for %d requests queued behind the first; want them in one", started-1, queued)
	}
}

// queuedRecords counts the records waiting for a produce request.
func (p *kafkaPublisher) queuedRecords() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, q := range p.queues {
		for _, c := range q.pending {
			n += len(c.msgs)
		}
	}
	return n
}

// keyFor returns a record key that kafka.Hash sends to partition part of
// partitions.
func keyFor(t *testing.T, part, partitions int) []byte {
	t.Helper()
	all := make([]int, partitions)
	for i := range all {
		all[i] = i
	}
	for i := range 1000 {
		key := []byte("acme/c" + string(rune('a'+i%26)) + string(rune('a'+i/26)))
		if (&kafka.Hash{}).Balance(kafka.Message{Key: key}, all...) == part {
			return key
		}
	}
	t.Fatalf("no key for partition %d", part)
	return nil
}

// TestSilentPartition: the broker swallows produce requests for partition
// 1 only. A request with records for both partitions is answered 503 (its
// partition 0 records may be written: the 503 says may or may not); a
// request for partition 1 queued behind it is answered 503 without being
// sent; partition 0 keeps acknowledging meanwhile.
func TestSilentPartition(t *testing.T) {
	release := make(chan struct{})
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "events"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	t.Cleanup(func() { close(release) })
	var mu sync.Mutex
	silent := 0 // produce requests received for partition 1
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		for _, rt := range req.(*kmsg.ProduceRequest).Topics {
			for _, rp := range rt.Partitions {
				if rp.Partition == 1 {
					mu.Lock()
					silent++
					mu.Unlock()
					c.SleepControl(func() { <-release })
				}
			}
		}
		return nil, nil, false
	})
	silentProduces := func() int { mu.Lock(); defer mu.Unlock(); return silent }

	cfg := testConfig()
	cfg.ProduceTimeout = 2 * time.Second
	cfg.KafkaMaxAttempts = 1
	p := newKafkaPublisher(kafkaConfig(c.ListenAddrs(), "events"), cfg)
	k0, k1 := keyFor(t, 0, 2), keyFor(t, 1, 2)
	publish := func(keys ...[]byte) <-chan error {
		done := make(chan error, 1)
		var msgs []kafka.Message
		for _, k := range keys {
			msgs = append(msgs, kafka.Message{Key: k, Value: []byte(`{}`)})
		}
		go func() { done <- p.Publish(context.Background(), msgs) }()
		return done
	}

	both := publish(k0, k1)
	eventually(t, func() bool { return silentProduces() == 1 })
	queued := publish(k1)
	if err := <-publish(k0); err != nil {
		t.Errorf("partition 0 while partition 1 is silent: %v", err)
	}
	if err := <-both; err == nil {
		t.Error("a request with records for the silent partition was acknowledged")
	}
	if err := <-queued; err == nil {
		t.Error("a request queued for the silent partition was acknowledged")
	}
	_ = p.Close()
	if n := silentProduces(); n != 1 {
		t.Errorf("%d produce requests for partition 1; the queued request's records were sent after its deadline", n)
	}
}

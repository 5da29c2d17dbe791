package ingest

import (
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/testenv"
)

// check503 asserts a response says nothing of the request was accepted.
func check503(t *testing.T, code int, body []byte) {
	t.Helper()
	if code != 503 {
		t.Fatalf("status %d, want 503: %s", code, body)
	}
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatal(err)
	}
	var details Response
	if err := json.Unmarshal(eb.Details, &details); err != nil {
		t.Fatalf("details of %s: %v", body, err)
	}
	if eb.Code != httpapi.CodeUnavailable || details.Accepted != 0 || !strings.Contains(eb.Message, "may or may not have been recorded") {
		t.Errorf("503 body %s", body)
	}
}

func TestUnavailableWhenBrokerUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	cfg := testConfig()
	cfg.ProduceTimeout = 2 * time.Second
	base, _ := startService(t, cfg, []string{dead}, "events")

	code, body := post(t, base, request{body: array(event("e1", "c1"), event("e2", "c2"))})
	check503(t, code, body)
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, `"kafka":`) {
		t.Errorf("readyz %d %s", code, body)
	}
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{"tally_ingest_kafka_produce_errors_total 1", "tally_ingest_events_accepted_total 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestUnavailableWhenTopicMissing(t *testing.T) {
	brokers := testenv.Kafka(t)
	base, _ := startService(t, testConfig(), brokers, "events")

	code, body := post(t, base, request{body: []byte(event("e1", "c1"))})
	check503(t, code, body)
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "events") {
		t.Errorf("readyz without topic %d %s", code, body)
	}

	// Once the topic exists, readiness and writes recover without a restart
	// (after the readiness cache and kafka-go's metadata cache expire).
	testenv.CreateTopic(t, brokers, "events", 2)
	eventually(t, func() bool { code, _ := get(t, base+"/readyz"); return code == 200 })
	eventually(t, func() bool { code, _ := post(t, base, request{body: []byte(event("e1", "c1"))}); return code == 202 })
}

// killableListener lets a test take the broker off the network: closing it
// closes the listener and every connection it accepted.
type killableListener struct {
	net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	killed bool
}

func (l *killableListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.killed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	l.conns = append(l.conns, c)
	return c, nil
}

func (l *killableListener) kill() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.killed = true
	_ = l.Listener.Close()
	for _, c := range l.conns {
		_ = c.Close()
	}
}

func TestUnavailableWhenBrokerDies(t *testing.T) {
	var listener *killableListener
	brokers := testenv.Kafka(t, kfake.ListenFn(func(network, addr string) (net.Listener, error) {
		ln, err := net.Listen(network, addr)
		if err != nil {
			return nil, err
		}
		listener = &killableListener{Listener: ln}
		return listener, nil
	}))
	testenv.CreateTopic(t, brokers, "events", 2)
	cfg := testConfig()
	cfg.ProduceTimeout = 2 * time.Second
	base, stop := startService(t, cfg, brokers, "events")

	if code, body := post(t, base, request{body: []byte(event("e1", "c1"))}); code != 202 {
		t.Fatalf("before: %d %s", code, body)
	}
	listener.kill()
	code, body := post(t, base, request{body: array(event("e2", "c1"), event("e3", "c2"))})
	check503(t, code, body)
	eventually(t, func() bool { code, _ := get(t, base+"/readyz"); return code == 503 })
	// The 503 came once the writer had given up on the batch, so shutdown
	// has nothing of it left to flush; should the writer hold anything
	// else, shutdown gives up on it rather than waiting out kafka-go's
	// retries, and says so.
	if err := stop(); err != nil && !errors.Is(err, errFlushAbandoned) {
		t.Errorf("Run: %v", err)
	}
}

// eventually polls cond for up to 15 s; it waits for caches to expire and
// asserts nothing about how long that takes.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(errors.New("condition not met within 15s"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

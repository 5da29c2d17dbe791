package ingest

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tally-oss/tally/internal/testenv"
)

// slowListener makes the broker slow to answer once armed, and says when
// it first held back an answer.
type slowListener struct {
	net.Listener
	armed   atomic.Bool
	holding chan struct{}
	once    sync.Once
}

type slowConn struct {
	net.Conn
	l *slowListener
}

func (l *slowListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &slowConn{Conn: c, l: l}, nil
}

func (c *slowConn) Write(b []byte) (int, error) {
	if c.l.armed.Load() {
		c.l.once.Do(func() { close(c.l.holding) })
		time.Sleep(500 * time.Millisecond)
	}
	return c.Conn.Write(b)
}

// TestRunDrainsWaitingForAck stops the service while a request is waiting
// for Kafka's ack: the request still gets its 202 and the record is in
// Kafka.
func TestRunDrainsWaitingForAck(t *testing.T) {
	slow := &slowListener{holding: make(chan struct{})}
	brokers := testenv.Kafka(t, kfake.ListenFn(func(network, addr string) (net.Listener, error) {
		ln, err := net.Listen(network, addr)
		slow.Listener = ln
		return slow, err
	}))
	testenv.CreateTopic(t, brokers, "events", 1)
	base, stop := startService(t, testConfig(), brokers, "events")
	// Warm up: connections and topic metadata, so that the next answer the
	// broker sends is the produce acknowledgement.
	if code, body := post(t, base, request{body: []byte(event("e0", "c1"))}); code != 202 {
		t.Fatalf("warm-up: %d %s", code, body)
	}

	slow.armed.Store(true)
	type result struct {
		code int
		body []byte
		err  error
	}
	res := make(chan result, 1)
	go func() {
		code, body, err := tryPost(base, request{body: []byte(event("e1", "c1"))})
		res <- result{code, body, err}
	}()
	select {
	case <-slow.holding: // the request is inside Publish, waiting for the ack
	case <-time.After(15 * time.Second):
		t.Fatal("the produce request never reached the broker")
	}
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if r := <-res; r.code != 202 {
		t.Fatalf("request in flight at shutdown: %d %s %v", r.code, r.body, r.err)
	}
	slow.armed.Store(false)
	if msgs := readAll(t, brokers, "events", 1, 2); string(msgs[1].Key) != "acme/c1" {
		t.Errorf("records %v", msgs)
	}
}

// TestRunDrainsBeforeClosingWriter stops the service while a client is
// still uploading its body. The writer must outlive the HTTP drain, or
// that request fails with a closed writer.
func TestRunDrainsBeforeClosingWriter(t *testing.T) {
	brokers := testenv.Kafka(t)
	testenv.CreateTopic(t, brokers, "events", 1)
	s := newTestService(t, testConfig(), Deps{Kafka: kafkaConfig(brokers, "events")})
	started := make(chan struct{})
	var once sync.Once
	s.events.now = func() time.Time { // called as the handler starts
		once.Do(func() { close(started) })
		return time.Now()
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	bodyR, bodyW := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, "http://"+s.Addr()+EventsRoute, bodyR)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+acmeKey)
	resc := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
		}
		resc <- resp
	}()
	full := []byte(event("e1", "c1"))
	if _, err := bodyW.Write(full[:10]); err != nil {
		t.Fatal(err)
	}
	<-started
	cancel() // shutdown begins while the body is half sent
	if _, err := bodyW.Write(full[10:]); err != nil {
		t.Fatal(err)
	}
	_ = bodyW.Close()
	resp := <-resc
	if resp == nil {
		t.FailNow()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 202 {
		t.Fatalf("request uploading at shutdown: %d %s", resp.StatusCode, body)
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	readAll(t, brokers, "events", 1, 1)
}

package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// ingestStub answers the events route with the statuses given, one per
// request, then 202 accepting everything; it keeps every body it got.
// It stands in for ingest to test the client's HTTP behaviour only.
type ingestStub struct {
	mu       sync.Mutex
	statuses []int
	header   http.Header // extra headers of the non-202 answers
	bodies   [][]byte
}

func (s *ingestStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, body)
	n := len(s.bodies)
	s.mu.Unlock()
	if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Authorization") != "Bearer test-key" {
		http.Error(w, "want gzip and the key", http.StatusTeapot)
		return
	}
	if n <= len(s.statuses) {
		for k, v := range s.header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.statuses[n-1])
		_, _ = w.Write([]byte(`{"code":"stub","message":"answer ` + http.StatusText(s.statuses[n-1]) + `"}`))
		return
	}
	var events []Event
	if err := json.Unmarshal(gunzip(body), &events); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(SendResult{Accepted: len(events), Rejected: []Rejection{}})
}

// requestEvents decodes the gzipped JSON array of events that the client
// sent to the events route.
func requestEvents(r *http.Request) []Event {
	zr, _ := gzip.NewReader(r.Body)
	var events []Event
	_ = json.NewDecoder(zr).Decode(&events)
	return events
}

func gunzip(b []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	out, _ := io.ReadAll(zr)
	return out
}

// testClient is a client of stub whose waits are recorded, not taken.
func testClient(t *testing.T, h http.Handler, policy RetryPolicy) (*Client, *[]time.Duration) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := New(srv.URL, "test-key", WithRetry(policy))
	var waits []time.Duration
	c.sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return ctx.Err()
	}
	return c, &waits
}

func fastPolicy() RetryPolicy {
	return RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond, Multiplier: 2, Jitter: 0.5, MaxAttempts: 10}
}

// A 503, a 429, a proxy's 502 and 504, then 202: five attempts with
// byte-identical bodies, the ids generated once, before the first attempt.
func TestSendRetriesSameBytes(t *testing.T) {
	stub := &ingestStub{statuses: []int{http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusGatewayTimeout}}
	c, waits := testClient(t, stub, fastPolicy())
	res, err := c.Send(context.Background(),
		Event{Type: "api.call", CustomerID: "acme", Properties: map[string]any{"n": 1}},
		Event{ID: "given", Type: "api.call", CustomerID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 2 || res.Attempts != 5 || len(*waits) != 4 {
		t.Fatalf("result %+v after waits %v, want 2 accepted in 5 attempts", res, *waits)
	}
	if len(stub.bodies) != 5 {
		t.Fatalf("%d attempts, want 5", len(stub.bodies))
	}
	for i, b := range stub.bodies[1:] {
		if !bytes.Equal(b, stub.bodies[0]) {
			t.Fatalf("attempt %d sent other bytes than the first: %q", i+2, stub.bodies)
		}
	}
	var sent []Event
	if err := json.Unmarshal(gunzip(stub.bodies[0]), &sent); err != nil {
		t.Fatal(err)
	}
	if len(sent) != 2 || len(sent[0].ID) != 36 || sent[1].ID != "given" {
		t.Fatalf("ids sent: %+v, want a UUID and the given id", sent)
	}
}

// The wait after an answer with Retry-After is at least that long, even
// when the backoff would wait less.
func TestSendHonoursRetryAfter(t *testing.T) {
	stub := &ingestStub{statuses: []int{http.StatusTooManyRequests, http.StatusServiceUnavailable}, header: http.Header{"Retry-After": {"3"}}}
	c, waits := testClient(t, stub, fastPolicy())
	if _, err := c.Send(context.Background(), Event{ID: "e1", Type: "t", CustomerID: "c"}); err != nil {
		t.Fatal(err)
	}
	if len(*waits) != 2 {
		t.Fatalf("waits %v, want two", *waits)
	}
	for _, w := range *waits {
		if w < 3*time.Second {
			t.Errorf("waited %s after Retry-After: 3", w)
		}
	}
}

// 400, 401 and 413 are answers about the request itself: sending it again
// gets the same answer, so it is sent once and the error carries the
// status, code and message.
func TestSendDoesNotRetryClientErrors(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge} {
		stub := &ingestStub{statuses: []int{status, status}}
		c, waits := testClient(t, stub, fastPolicy())
		_, err := c.Send(context.Background(), Event{ID: "e1", Type: "t", CustomerID: "c"})
		var apiErr *Error
		if !errors.As(err, &apiErr) || apiErr.Status != status || apiErr.Code != "stub" || apiErr.Message == "" {
			t.Errorf("status %d: error %v, want an *Error with status, code and message", status, err)
		}
		if len(stub.bodies) != 1 || len(*waits) != 0 {
			t.Errorf("status %d: %d attempts, waits %v, want one attempt", status, len(stub.bodies), *waits)
		}
	}
}

// Ingest's 400 when no event is valid is a result naming each rejection.
func TestSendNoneValidIsRejections(t *testing.T) {
	c, _ := testClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"code":"validation_failed","message":"none of the 1 events is valid","details":[{"index":0,"id":"e1","field":"type","error":"is required"}]}`))
	}), fastPolicy())
	res, err := c.Send(context.Background(), Event{ID: "e1", CustomerID: "c"})
	if err != nil || res.Accepted != 0 || len(res.Rejected) != 1 || res.Rejected[0].Field != "type" {
		t.Fatalf("result %+v, error %v; want one rejection of field type", res, err)
	}
}

// A context that ends stops the retries: no attempt after it.
func TestSendStopsWhenContextEnds(t *testing.T) {
	stub := &ingestStub{statuses: []int{503, 503, 503, 503, 503, 503, 503, 503, 503, 503}}
	c, _ := testClient(t, stub, fastPolicy())
	ctx, cancel := context.WithCancel(context.Background())
	c.sleep = func(ctx context.Context, d time.Duration) error {
		cancel() // the caller gives up during the first wait
		return ctx.Err()
	}
	_, err := c.Send(ctx, Event{ID: "e1", Type: "t", CustomerID: "c"})
	var apiErr *Error
	if !errors.Is(err, context.Canceled) || !errors.As(err, &apiErr) || apiErr.Status != 503 {
		t.Fatalf("error %v, want context.Canceled and the last answer", err)
	}
	if len(stub.bodies) != 1 {
		t.Fatalf("%d attempts, want 1", len(stub.bodies))
	}
}

// A network error (the server closes the connection) is retried with the
// same body.
func TestSendRetriesNetworkErrors(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	c, waits := testClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, body)
		n := len(bodies)
		mu.Unlock()
		if n == 1 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close() // no answer at all
			}
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"accepted":1,"rejected":[]}`))
	}), fastPolicy())
	res, err := c.Send(context.Background(), Event{Type: "t", CustomerID: "c"})
	if err != nil || res.Accepted != 1 || len(*waits) != 1 {
		t.Fatalf("result %+v, error %v, waits %v", res, err, *waits)
	}
	if len(bodies) != 2 || !bytes.Equal(bodies[0], bodies[1]) {
		t.Fatalf("attempts sent different bodies: %q", bodies)
	}
}

// Retries end after MaxAttempts with the last answer as the error.
func TestSendGivesUpAfterMaxAttempts(t *testing.T) {
	stub := &ingestStub{statuses: []int{503, 503, 503, 503}}
	policy := fastPolicy()
	policy.MaxAttempts = 3
	c, _ := testClient(t, stub, policy)
	_, err := c.Send(context.Background(), Event{ID: "e1", Type: "t", CustomerID: "c"})
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != 503 || len(stub.bodies) != 3 {
		t.Fatalf("error %v after %d attempts, want a 503 after 3", err, len(stub.bodies))
	}
}

// Send refuses a request over ingest's limits without sending it, and a
// Batcher keeps its requests within them.
func TestRequestLimits(t *testing.T) {
	stub := &ingestStub{}
	srv := httptest.NewServer(stub)
	t.Cleanup(srv.Close)
	c := New(srv.URL, "test-key", WithRequestLimits(2, 300))
	ev := Event{Type: "t", CustomerID: "c"}
	if _, err := c.Send(context.Background(), ev, ev, ev); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("3 events over a limit of 2: %v", err)
	}
	big := Event{Type: "t", CustomerID: "c", Properties: map[string]string{"pad": strings.Repeat("x", 300)}}
	if _, err := c.Send(context.Background(), big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("an event over 300 bytes: %v", err)
	}
	if len(stub.bodies) != 0 {
		t.Fatalf("%d requests sent, want none", len(stub.bodies))
	}
	b := c.NewBatcher(context.Background(), BatcherConfig{MaxEvents: 1000, Linger: time.Hour})
	for range 5 {
		if _, err := b.Add(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(stub.bodies) != 3 || b.Stats().Accepted != 5 {
		t.Fatalf("%d requests, stats %+v; want 5 events in 3 requests of at most 2", len(stub.bodies), b.Stats())
	}
}

// A base URL that cannot work is an error at once, not retried; Notify
// sees each retried failure and its wait.
func TestSendPermanentErrorAndNotify(t *testing.T) {
	c := New("ftp://127.0.0.1:1", "test-key", WithRetry(fastPolicy()))
	c.sleep = func(ctx context.Context, d time.Duration) error { t.Fatal("waited to retry a bad URL"); return nil }
	if _, err := c.Send(context.Background(), Event{Type: "t", CustomerID: "c"}); err == nil || !strings.Contains(err.Error(), "http://") {
		t.Fatalf("ftp base URL: %v", err)
	}

	stub := &ingestStub{statuses: []int{http.StatusServiceUnavailable}, header: http.Header{"Retry-After": {"2"}}}
	policy := fastPolicy()
	var notified []string
	policy.Notify = func(err error, wait time.Duration) {
		notified = append(notified, fmt.Sprint(wait >= 2*time.Second, " ", err))
	}
	c, _ = testClient(t, stub, policy)
	if _, err := c.Send(context.Background(), Event{Type: "t", CustomerID: "c"}); err != nil {
		t.Fatal(err)
	}
	if len(notified) != 1 || notified[0] != "true HTTP 503 stub: answer Service Unavailable" {
		t.Fatalf("notified %q", notified)
	}
}

// review9a: a Retry-After longer than what is left of MaxElapsed (a proxy's
// "Retry-After: 3600", or a value so large it overflows time.Duration) must
// not make Send sleep past its retry budget: `tally send -retry-for 2m`
// hung for an hour. Send gives up with the answer's error instead.
func TestSendRetryAfterBeyondBudgetGivesUp(t *testing.T) {
	for _, ra := range []string{"3600", "99999999999", "9223372036854775807", "99999999999999999999999", "Wed, 21 Oct 2099 07:28:00 GMT"} {
		t.Run(ra, func(t *testing.T) {
			stub := &ingestStub{statuses: []int{http.StatusTooManyRequests, http.StatusTooManyRequests}, header: http.Header{"Retry-After": {ra}}}
			p := fastPolicy()
			p.MaxAttempts = 0
			p.MaxElapsed = 2 * time.Second
			c, waits := testClient(t, stub, p)
			_, err := c.Send(context.Background(), Event{ID: "e1", Type: "t", CustomerID: "c"})
			for _, w := range *waits {
				if w > p.MaxElapsed || w < 0 {
					t.Errorf("Retry-After %s: waited %s, beyond MaxElapsed %s", ra, w, p.MaxElapsed)
				}
			}
			if err == nil {
				t.Errorf("Retry-After %s: no error; want the 429 once waiting would pass MaxElapsed", ra)
			}
		})
	}
}

// review9a F4: Send gives an event without an id a UUID, and a timeout
// (or retries spent on 503s) is an error although ingest may have recorded
// the events. The caller cannot send them again safely unless it learns
// the ids that were sent: sending the same id-less Event again makes a
// new id, and ingest counts the event twice. The result of a failed Send
// must carry the ids it sent.
func TestSendFailureTellsTheIDsSent(t *testing.T) {
	var mu sync.Mutex
	recorded := map[string]int{}
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		events := requestEvents(r)
		mu.Lock()
		for _, ev := range events {
			recorded[ev.ID]++ // ingest recorded it (Kafka acknowledged) ...
		}
		requests++
		first := requests == 1
		mu.Unlock()
		if first {
			time.Sleep(300 * time.Millisecond) // ... but the answer is too late
		}
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(SendResult{Accepted: len(events), Rejected: []Rejection{}})
	}))
	defer srv.Close()
	c := New(srv.URL, "k", WithRetry(NoRetry()), WithHTTPClient(&http.Client{Timeout: 100 * time.Millisecond}))
	events := []Event{{Type: "t", CustomerID: "c"}, {ID: "mine", Type: "t", CustomerID: "c"}}
	res, err := c.Send(context.Background(), events...)
	if err == nil {
		t.Fatal("no error after the timeout")
	}
	// The caller sends the same events again, with the ids of the first try.
	if len(res.IDs) != len(events) {
		t.Fatalf("a failed Send returned ids %q: the caller cannot send the same events again", res.IDs)
	}
	for i := range events {
		events[i].ID = res.IDs[i]
	}
	if _, err := c.Send(context.Background(), events...); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(recorded) != 2 {
		t.Fatalf("ingest got %d distinct ids for 2 events: %v", len(recorded), recorded)
	}
}

// MaybeRecorded: set when an attempt may have been served without its
// answer reaching the client, not when nothing can have been recorded.
func TestSendMaybeRecorded(t *testing.T) {
	p := fastPolicy()
	p.MaxAttempts = 2
	for _, c := range []struct {
		name     string
		statuses []int
		code     string
		want     bool
	}{
		{"503 unavailable", []int{503, 503}, "unavailable", true},
		{"503 overloaded", []int{503, 503}, "overloaded", false},
		{"429", []int{429, 429}, "rate_limited", false},
		{"504", []int{504, 504}, "", true},
		{"400", []int{400}, "bad_request", false},
		{"503 then 429", []int{503, 429}, "unavailable", true},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		n := 0
		srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			code := c.code
			if n > 0 && c.name == "503 then 429" {
				code = "rate_limited"
			}
			w.WriteHeader(c.statuses[min(n, len(c.statuses)-1)])
			n++
			_, _ = w.Write([]byte(`{"code":"` + code + `","message":"m"}`))
		})
		cl := New(srv.URL, "k", WithRetry(p))
		cl.sleep = func(ctx context.Context, d time.Duration) error { return nil }
		res, err := cl.Send(context.Background(), Event{ID: "e", Type: "t", CustomerID: "c"})
		if err == nil || res.MaybeRecorded != c.want {
			t.Errorf("%s: err %v, MaybeRecorded %v, want %v", c.name, err, res.MaybeRecorded, c.want)
		}
		srv.Close()
	}
	// A refused connection was not served; a timeout may have been.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(200 * time.Millisecond) }))
	defer srv.Close()
	cl := New(srv.URL, "k", WithRetry(NoRetry()), WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond}))
	if res, err := cl.Send(context.Background(), Event{ID: "e", Type: "t", CustomerID: "c"}); err == nil || !res.MaybeRecorded {
		t.Errorf("timeout: err %v, MaybeRecorded %v, want true", err, res.MaybeRecorded)
	}
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	cl = New(dead.URL, "k", WithRetry(NoRetry()))
	if res, err := cl.Send(context.Background(), Event{ID: "e", Type: "t", CustomerID: "c"}); err == nil || res.MaybeRecorded {
		t.Errorf("refused: err %v, MaybeRecorded %v, want false", err, res.MaybeRecorded)
	}
}

// review9a F9: a 202 whose body cannot be decoded (a proxy that rewrites
// it, a truncated answer) is an error, but ingest did record the events:
// the result must not say they were not.
func TestSendUndecodable202MaybeRecorded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("OK"))
	}))
	defer srv.Close()
	c := New(srv.URL, "k", WithRetry(NoRetry()))
	res, err := c.Send(context.Background(), Event{ID: "e", Type: "t", CustomerID: "c"})
	if err == nil || !res.MaybeRecorded {
		t.Fatalf("err %v, MaybeRecorded %v: a 202 was answered, the events are recorded", err, res.MaybeRecorded)
	}
}

// A request whose context ended before it was sent was not recorded
// (the events a Batcher still held when its context was cancelled).
func TestSendCancelledBeforeSendingNotMaybeRecorded(t *testing.T) {
	stub := &ingestStub{}
	c, _ := testClient(t, stub, fastPolicy())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := c.Send(ctx, Event{ID: "e", Type: "t", CustomerID: "c"})
	if err == nil || res.MaybeRecorded || len(stub.bodies) != 0 {
		t.Fatalf("err %v, MaybeRecorded %v, %d requests", err, res.MaybeRecorded, len(stub.bodies))
	}
}

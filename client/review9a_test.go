package client

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

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
		zr, _ := gzip.NewReader(r.Body)
		var events []Event
		_ = json.NewDecoder(zr).Decode(&events)
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

// Add racing Close: every Add that returned an id is sent exactly once,
// and the stats match what the server answered.
func TestBatcherAddCloseRace(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, _ := gzip.NewReader(r.Body)
		var events []Event
		_ = json.NewDecoder(zr).Decode(&events)
		mu.Lock()
		for _, ev := range events {
			got[ev.ID]++
		}
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(SendResult{Accepted: len(events), Rejected: []Rejection{}})
	}))
	defer srv.Close()
	for round := range 20 {
		mu.Lock()
		clear(got)
		mu.Unlock()
		c := New(srv.URL, "k")
		b := c.NewBatcher(context.Background(), BatcherConfig{MaxEvents: 7, Linger: time.Millisecond, Concurrency: 3})
		var wg sync.WaitGroup
		var idsMu sync.Mutex
		var added []string
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 200 {
					id, err := b.Add(context.Background(), Event{Type: "t", CustomerID: "c"})
					if err != nil {
						if err != ErrClosed {
							t.Errorf("add: %v", err)
						}
						return
					}
					idsMu.Lock()
					added = append(added, id)
					idsMu.Unlock()
					if g == 0 && i == 50+round {
						go func() { _ = b.Close(context.Background()) }()
					}
				}
			}()
		}
		wg.Wait()
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		for _, id := range added {
			if got[id] != 1 {
				t.Errorf("round %d: id %s added and sent %d times", round, id, got[id])
			}
		}
		if len(got) != len(added) {
			t.Errorf("round %d: %d added, %d sent", round, len(added), len(got))
		}
		st := b.Stats()
		if st.Accepted != int64(len(added)) || st.Events != int64(len(added)) {
			t.Errorf("round %d: stats %+v, %d added", round, st, len(added))
		}
		mu.Unlock()
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

// review9a F12: ingest's 503 "not acknowledged" still names the events it
// rejected as invalid (they were never going to Kafka). When retries are
// spent, those are rejected, not failed and possibly recorded.
func TestBatcher503KeepsRejections(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"code":"unavailable","message":"Kafka did not acknowledge","details":{"accepted":0,"rejected":[{"index":1,"id":"bad","field":"time","error":"in the future"}]}}`))
	}))
	defer srv.Close()
	p := fastPolicy()
	p.MaxAttempts = 2
	c := New(srv.URL, "k", WithRetry(p))
	c.sleep = func(ctx context.Context, d time.Duration) error { return nil }
	var results []BatchResult
	b := c.NewBatcher(context.Background(), BatcherConfig{OnResult: func(r BatchResult) { results = append(results, r) }})
	for _, id := range []string{"good", "bad", "good2"} {
		if _, err := b.Add(context.Background(), Event{ID: id, Type: "t", CustomerID: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(context.Background()); err == nil {
		t.Fatal("no error after retries spent on 503")
	}
	st := b.Stats()
	if st.Failed != 2 || st.Rejected != 1 || st.Accepted != 0 {
		t.Errorf("stats %+v, want 2 failed (may be recorded) and 1 rejected", st)
	}
	if len(results) != 1 || len(results[0].Rejected) != 1 || results[0].Rejected[0].ID != "bad" || !results[0].MaybeRecorded {
		t.Errorf("results %+v", results)
	}
}

package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// The batcher splits by events and by bytes, Flush waits for every
// answer, and each id is sent once (no retries here).
func TestBatcherBounds(t *testing.T) {
	stub := &ingestStub{}
	c, _ := testClient(t, stub, fastPolicy())
	var mu sync.Mutex
	var results []BatchResult
	b := c.NewBatcher(context.Background(), BatcherConfig{
		MaxEvents: 10, MaxBytes: 2000, Linger: time.Hour, Concurrency: 3,
		OnResult: func(r BatchResult) { mu.Lock(); results = append(results, r); mu.Unlock() },
	})
	ctx := context.Background()
	ids := map[string]bool{}
	for i := range 25 { // small events: batches of 10
		id, err := b.Add(ctx, Event{ID: fmt.Sprint("small-", i), Type: "t", CustomerID: "c"})
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	big := strings.Repeat("x", 500)
	for range 6 { // about 600 bytes each: 3 a batch
		id, err := b.Add(ctx, Event{Type: "t", CustomerID: "c", Properties: map[string]string{"pad": big}})
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	if st.Accepted != 31 || st.Events != 31 || st.Failed != 0 {
		t.Fatalf("stats %+v, want 31 accepted", st)
	}
	seen := map[string]bool{}
	for _, body := range stub.bodies {
		raw := gunzip(body)
		var events []Event
		if err := json.Unmarshal(raw, &events); err != nil {
			t.Fatal(err)
		}
		if len(events) > 10 || len(raw) > 2000 {
			t.Errorf("a request of %d events, %d bytes: over the bounds", len(events), len(raw))
		}
		for _, e := range events {
			if seen[e.ID] || !ids[e.ID] {
				t.Errorf("id %q sent twice or not returned by Add", e.ID)
			}
			seen[e.ID] = true
		}
	}
	if len(seen) != 31 || len(results) != len(stub.bodies) {
		t.Fatalf("%d ids sent in %d requests, %d results", len(seen), len(stub.bodies), len(results))
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(ctx, Event{Type: "t", CustomerID: "c"}); err != ErrClosed {
		t.Fatalf("Add after Close: %v", err)
	}
}

// A failed request is counted as failed and returned by Flush.
func TestBatcherReportsFailures(t *testing.T) {
	stub := &ingestStub{statuses: []int{401}}
	c, _ := testClient(t, stub, fastPolicy())
	b := c.NewBatcher(context.Background(), BatcherConfig{Linger: time.Millisecond})
	if _, err := b.Add(context.Background(), Event{Type: "t", CustomerID: "c"}); err != nil {
		t.Fatal(err)
	}
	err := b.Close(context.Background())
	if err == nil || !strings.Contains(err.Error(), "401") || b.Stats().Failed != 1 {
		t.Fatalf("close: %v, stats %+v; want the 401 and one failed event", err, b.Stats())
	}
}

// A partial batch goes out after Linger, without a Flush.
func TestBatcherLinger(t *testing.T) {
	stub := &ingestStub{}
	c, _ := testClient(t, stub, fastPolicy())
	sent := make(chan BatchResult, 1)
	b := c.NewBatcher(context.Background(), BatcherConfig{Linger: 10 * time.Millisecond, OnResult: func(r BatchResult) { sent <- r }})
	defer b.Close(context.Background())
	id, err := b.Add(context.Background(), Event{Type: "t", CustomerID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-sent:
		if len(r.IDs) != 1 || r.IDs[0] != id || r.Accepted != 1 {
			t.Fatalf("result %+v, want the one event %s accepted", r, id)
		}
	case <-time.After(time.Minute):
		t.Fatal("the partial batch was not sent within a minute of a 10 ms linger")
	}
}

// Retried requests of a Batcher re-send the same bytes, and its context
// ending stops the retries.
func TestBatcherRetriesAndContext(t *testing.T) {
	stub := &ingestStub{statuses: []int{503, 429}}
	c, waits := testClient(t, stub, fastPolicy())
	b := c.NewBatcher(context.Background(), BatcherConfig{})
	if _, err := b.Add(context.Background(), Event{Type: "t", CustomerID: "c"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Accepted != 1 || st.Retries != 2 || len(*waits) != 2 || string(stub.bodies[0]) != string(stub.bodies[2]) {
		t.Fatalf("stats %+v, waits %v", st, *waits)
	}

	stub = &ingestStub{statuses: []int{503, 503, 503}}
	c, _ = testClient(t, stub, fastPolicy())
	ctx, cancel := context.WithCancel(context.Background())
	c.sleep = func(ctx context.Context, d time.Duration) error { cancel(); return ctx.Err() }
	b = c.NewBatcher(ctx, BatcherConfig{})
	if _, err := b.Add(context.Background(), Event{Type: "t", CustomerID: "c"}); err != nil {
		t.Fatal(err)
	}
	err := b.Close(context.Background())
	if !errors.Is(err, context.Canceled) || b.Stats().Failed != 1 || len(stub.bodies) != 1 {
		t.Fatalf("close: %v, stats %+v, %d attempts; want one attempt, then canceled", err, b.Stats(), len(stub.bodies))
	}
}

// Add racing Close: every Add that returned an id is sent exactly once,
// and the stats match what the server answered.
func TestBatcherAddCloseRace(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		events := requestEvents(r)
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

package ingest

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/segmentio/kafka-go"
)

// Issue 6, defect 8 at ingest: requests beyond the in-flight limits are
// answered 503 at once rather than queued, and an organization over its
// rate is answered 429; both with Retry-After, and counted.

// configWith returns the flag defaults with args applied, as an operator
// would set them.
func configWith(t *testing.T, args ...string) Config {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	cfg.ListenAddr = "127.0.0.1:0"
	return cfg
}

// blockingPublisher holds every Publish until release is closed, and
// tells on entered when one is held.
type blockingPublisher struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	n       int
}

func newBlockingPublisher() *blockingPublisher {
	return &blockingPublisher{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (p *blockingPublisher) Publish(_ context.Context, msgs []kafka.Message) error {
	p.entered <- struct{}{}
	<-p.release
	p.mu.Lock()
	p.n += len(msgs)
	p.mu.Unlock()
	return nil
}

// serveAsync serves r in the background; the result arrives on the channel.
func serveAsync(h http.Handler, r request) <-chan int {
	done := make(chan int, 1)
	go func() {
		code, _ := serve(h, r)
		done <- code
	}()
	return done
}

func checkOverloaded(t *testing.T, rec *httptest.ResponseRecorder, wantCode int, wantErr string) {
	t.Helper()
	var eb errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
		t.Fatal(err)
	}
	if rec.Code != wantCode || eb.Code != wantErr || rec.Header().Get("Retry-After") == "" {
		t.Errorf("status %d (Retry-After %q): %s; want %d %s with Retry-After", rec.Code, rec.Header().Get("Retry-After"), rec.Body, wantCode, wantErr)
	}
}

func post1(h http.Handler, r request, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r.build(path))
	return rec
}

func TestInflightRequestLimit(t *testing.T) {
	pub := newBlockingPublisher()
	s := newTestService(t, configWith(t, "-ingest.max-inflight-requests=2"), Deps{Publisher: pub})
	h := s.Handler()
	first := serveAsync(h, request{body: []byte(event("e1", "c1"))})
	second := serveAsync(h, request{body: []byte(event("e2", "c1"))})
	<-pub.entered
	<-pub.entered

	for _, path := range []string{EventsRoute, LagoBatchRoute} {
		rec := post1(h, request{body: []byte(event("e3", "c1"))}, path)
		checkOverloaded(t, rec, 503, codeOverloaded)
	}
	close(pub.release)
	if a, b := <-first, <-second; a != 202 || b != 202 {
		t.Errorf("held requests answered %d and %d", a, b)
	}
	// The slots are free again.
	if rec := post1(h, request{body: []byte(event("e3", "c1"))}, EventsRoute); rec.Code != 202 {
		t.Errorf("after the held requests: %d %s", rec.Code, rec.Body)
	}
	_, metrics := gather(t, s)
	for _, want := range []string{`tally_ingest_requests_limited_total{limit="inflight_requests"} 2`, "tally_ingest_inflight_requests 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestInflightBytesLimit(t *testing.T) {
	pub := newBlockingPublisher()
	s := newTestService(t, configWith(t, "-ingest.max-body-bytes=100000", "-ingest.max-inflight-bytes=200000"), Deps{Publisher: pub})
	h := s.Handler()
	big := func(id string) request {
		return request{body: []byte(fmt.Sprintf(`{"id":%q,"type":"t","customer_id":"c1","properties":{"blob":%q}}`, id, strings.Repeat("x", 90_000)))}
	}
	held := serveAsync(h, big("e1"))
	<-pub.entered

	checkOverloaded(t, post1(h, big("e2"), EventsRoute), 503, codeOverloaded)
	// Small bodies still fit beside the held one.
	small := serveAsync(h, request{body: []byte(event("e3", "c1"))})
	<-pub.entered
	close(pub.release)
	if a, b := <-held, <-small; a != 202 || b != 202 {
		t.Errorf("answered %d and %d", a, b)
	}
	if rec := post1(h, big("e2"), EventsRoute); rec.Code != 202 {
		t.Errorf("after the held request: %d %s", rec.Code, rec.Body)
	}
	_, metrics := gather(t, s)
	for _, want := range []string{`tally_ingest_requests_limited_total{limit="inflight_bytes"} 1`, "tally_ingest_inflight_bytes 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestRateLimitPerOrganization(t *testing.T) {
	// One event in a thousand seconds: no token comes back while the test
	// runs, however slow the machine.
	pub := &recordingPublisher{}
	s := newTestService(t, configWith(t, "-ingest.rate-limit-events=0.001", "-ingest.rate-limit-burst=10", "-ingest.max-events=10"),
		Deps{Publisher: pub, Catalog: newLagoCatalog()})
	h := s.Handler()
	if rec := post1(h, request{body: array(manyEvents(10)...)}, EventsRoute); rec.Code != 202 {
		t.Fatalf("within the burst: %d %s", rec.Code, rec.Body)
	}
	rec := post1(h, request{body: []byte(event("e10", "c1"))}, EventsRoute)
	checkOverloaded(t, rec, 429, codeRateLimited)
	var eb struct {
		Message string `json:"message"`
		Details struct {
			Limit             string `json:"limit"`
			RetryAfterSeconds int    `json:"retry_after_seconds"`
		} `json:"details"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
		t.Fatal(err)
	}
	if eb.Details.Limit != "ingest.rate-limit-events" || !strings.Contains(eb.Message, "acme") ||
		strconv.Itoa(eb.Details.RetryAfterSeconds) != rec.Header().Get("Retry-After") || eb.Details.RetryAfterSeconds < 900 {
		t.Errorf("429 body %s, Retry-After %q", rec.Body, rec.Header().Get("Retry-After"))
	}
	// Lago's route answers in Lago's shape.
	lago := post1(h, request{body: lagoBatchBody(lagoEv("t1", "cust-9", "", ""))}, LagoBatchRoute)
	if lago.Code != 429 || !strings.Contains(lago.Body.String(), `"status":429,"error":"Too Many Requests","code":"rate_limited"`) || lago.Header().Get("Retry-After") == "" {
		t.Errorf("Lago: %d %s", lago.Code, lago.Body)
	}
	// Another organization has its own bucket.
	if rec := post1(h, request{body: array(manyEvents(10)...), auth: "Bearer " + globexKey}, EventsRoute); rec.Code != 202 {
		t.Errorf("globex: %d %s", rec.Code, rec.Body)
	}
	if n := len(pub.published()); n != 20 {
		t.Errorf("published %d records, want the 20 accepted", n)
	}
	_, metrics := gather(t, s)
	if want := `tally_ingest_requests_limited_total{limit="rate"} 2`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

func TestLimitsConfig(t *testing.T) {
	for _, args := range [][]string{
		{"-ingest.max-inflight-requests=0"},
		{"-ingest.max-inflight-bytes=1000"},
		{"-ingest.rate-limit-events=-1"},
		{"-ingest.rate-limit-events=10", "-ingest.rate-limit-burst=5"},
	} {
		cfg := configWith(t, args...)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%v: valid", args)
		}
	}
}

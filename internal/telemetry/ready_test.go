package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-oss/tally/internal/testenv"
)

func readyz(t *testing.T, h http.Handler) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	return rec.Code, rec.Body.String()
}

// TestReadinessCached: /readyz is unauthenticated, so its checks (a
// ClickHouse query, a Kafka metadata request) run at most once per
// ReadinessCacheTTL however often it is called: calls within the window
// reuse the result, a call after it runs the checks again, and a failure
// is cached like a success.
func TestReadinessCached(t *testing.T) {
	clock := testenv.NewClock(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
	s := NewServer("127.0.0.1:0", prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	s.ready.now = clock.Now
	var calls atomic.Int64
	var fail atomic.Bool
	s.AddCheck("clickhouse", func(context.Context) error {
		calls.Add(1)
		if fail.Load() {
			return errors.New("connection refused")
		}
		return nil
	})
	for range 100 {
		if code, body := readyz(t, s.Mux); code != 200 || !strings.Contains(body, `"clickhouse":"ok"`) {
			t.Fatalf("readyz = %d %s", code, body)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("100 calls within the cache window ran the check %d times, want 1", n)
	}
	fail.Store(true)
	clock.Advance(ReadinessCacheTTL - time.Millisecond)
	if code, _ := readyz(t, s.Mux); code != 200 || calls.Load() != 1 {
		t.Errorf("just inside the window: %d after %d checks, want the cached 200 after 1", code, calls.Load())
	}
	clock.Advance(time.Millisecond)
	for range 10 {
		if code, body := readyz(t, s.Mux); code != 503 || !strings.Contains(body, "connection refused") {
			t.Errorf("after the window: %d %s, want 503 naming the failure", code, body)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("checks after the window: %d, want 2", n)
	}
}

// TestReadinessSharedInFlight: callers that arrive while a check runs
// wait for it and share its result rather than starting their own, and a
// caller that gives up does not fail the check for the others.
func TestReadinessSharedInFlight(t *testing.T) {
	s := NewServer("127.0.0.1:0", prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	s.ready.now = testenv.NewClock(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)).Now
	var calls atomic.Int64
	started, release := make(chan struct{}), make(chan struct{})
	s.AddCheck("kafka", func(ctx context.Context) error {
		if calls.Add(1) == 1 {
			close(started)
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	// The first caller gives up while the check runs.
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan int)
	go func() {
		rec := httptest.NewRecorder()
		s.Mux.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil).WithContext(ctx))
		gaveUp <- rec.Code
	}()
	<-started
	cancel()
	<-gaveUp
	codes := make(chan int, 20)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := readyz(t, s.Mux)
			codes <- code
		}()
	}
	close(release)
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != 200 {
			t.Errorf("a caller sharing the check got %d, want 200", code)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("21 concurrent callers ran the check %d times, want 1", n)
	}
}

// TestReadinessForTheComponent: Readiness is /readyz's answer, from the
// same cached run: a failing check makes it not ready with its text, and
// the map returned is the caller's to keep.
func TestReadinessForTheComponent(t *testing.T) {
	s := NewServer("127.0.0.1:0", prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	s.ready.now = testenv.NewClock(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)).Now
	var calls atomic.Int64
	s.AddCheck("clickhouse", func(context.Context) error { calls.Add(1); return nil })
	s.AddCheck("kafka", func(context.Context) error { return errors.New("dial tcp 10.0.0.1:9092: refused") })
	ready, checks, err := s.Readiness(t.Context())
	if err != nil || ready || checks["clickhouse"] != "ok" || checks["kafka"] != "dial tcp 10.0.0.1:9092: refused" || len(checks) != 2 {
		t.Fatalf("Readiness = %v %v %v", ready, checks, err)
	}
	checks["kafka"] = "changed"
	if code, body := readyz(t, s.Mux); code != 503 || !strings.Contains(body, "refused") || calls.Load() != 1 {
		t.Errorf("readyz after Readiness: %d %s after %d runs, want the cached 503 of the one run", code, body, calls.Load())
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s.ready.forget()
	block := make(chan struct{})
	defer close(block)
	s.AddCheck("slow", func(context.Context) error { <-block; return nil })
	if _, _, err := s.Readiness(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Readiness with a canceled context: %v", err)
	}
}

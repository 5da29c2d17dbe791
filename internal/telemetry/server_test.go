package telemetry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-oss/tally/internal/testenv"
)

func TestServerEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	hm := NewHTTPMetrics(reg, "test")
	s := NewServer("127.0.0.1:0", reg, slog.New(slog.DiscardHandler))
	clock := testenv.NewClock(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
	s.ready.now = clock.Now
	s.Mux.Handle("GET /hello", hm.Wrap("/hello", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("hi"))
	})))
	broken := errors.New("clickhouse: connection refused")
	var fail atomic.Bool
	s.AddCheck("clickhouse", func(context.Context) error {
		if fail.Load() {
			return broken
		}
		return nil
	})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	base := "http://" + s.Addr()

	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("healthz = %d", code)
	}
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, `"clickhouse":"ok"`) {
		t.Errorf("readyz = %d %s", code, body)
	}
	fail.Store(true)
	clock.Advance(ReadinessCacheTTL) // the cached result expires
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "connection refused") {
		t.Errorf("readyz while broken = %d %s", code, body)
	}
	get("/hello")
	_, metrics := get("/metrics")
	if !strings.Contains(metrics, `tally_test_http_requests_total{code="200",route="/hello"} 1`) {
		t.Errorf("metrics lack the request counter:\n%s", metrics)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

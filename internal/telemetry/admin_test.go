package telemetry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// serve runs s until the test ends and returns its base URL.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return "http://" + s.Addr()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPprofNotOnPublicPort: a component's port serves its API to the
// world; Go's profiles (which print the command line, API keys and
// passwords given as flags included, and run for as long as seconds=
// asks) are not there.
func TestPprofNotOnPublicPort(t *testing.T) {
	base := serve(t, NewServer("127.0.0.1:0", prometheus.NewRegistry(), slog.New(slog.DiscardHandler)))
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1",
		"/debug/pprof/symbol", "/debug/pprof/trace?seconds=1"} {
		if code, _ := httpGet(t, base+path); code != http.StatusNotFound {
			t.Errorf("public port %s = %d, want 404", path, code)
		}
	}
}

// TestAdminServer: the admin server serves the profiles, but not the
// command line, and refuses a seconds= beyond MaxProfileDuration (or not
// a positive whole number) before starting anything.
func TestAdminServer(t *testing.T) {
	base := serve(t, NewAdminServer("127.0.0.1:0", slog.New(slog.DiscardHandler)))
	if code, body := httpGet(t, base+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("index = %d %.200s", code, body)
	}
	if code, body := httpGet(t, base+"/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Errorf("goroutine = %d %.200s", code, body)
	}
	if code, body := httpGet(t, base+"/debug/pprof/cmdline"); code != http.StatusNotFound || strings.Contains(body, "telemetry.test") {
		t.Errorf("cmdline = %d %.200s, want 404", code, body)
	}
	over := int(MaxProfileDuration/time.Second) + 1
	for _, path := range []string{
		"/debug/pprof/profile?seconds=" + itoa(over), "/debug/pprof/trace?seconds=" + itoa(over),
		"/debug/pprof/heap?seconds=" + itoa(over), "/debug/pprof/profile?seconds=1e9", "/debug/pprof/profile?seconds=-1",
		"/debug/pprof/profile?seconds=0",
	} {
		if code, body := httpGet(t, base+path); code != http.StatusBadRequest || !strings.Contains(body, "seconds") {
			t.Errorf("%s = %d %.200s, want 400 naming seconds", path, code, body)
		}
	}
	if code, _ := httpGet(t, base+"/metrics"); code != http.StatusNotFound {
		t.Errorf("admin /metrics = %d, want 404 (metrics are on the component's port)", code)
	}
}

// TestServerTimeouts: every server bounds how long a client may take to
// send its headers and its request, how long a response may take, and
// how long an idle connection stays open: by default, by SetTimeouts (the
// command's -http.* flags), and the admin server long enough for the
// longest profile it allows.
func TestServerTimeouts(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	check := func(name string, srv *http.Server, want Timeouts) {
		t.Helper()
		if srv.ReadHeaderTimeout != want.ReadHeader || srv.ReadTimeout != want.Read || srv.WriteTimeout != want.Write ||
			srv.IdleTimeout != want.Idle || want.ReadHeader <= 0 || want.Read <= 0 || want.Write <= 0 || want.Idle <= 0 {
			t.Errorf("%s: timeouts header %s read %s write %s idle %s, want %+v", name,
				srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, want)
		}
	}
	defaults := DefaultTimeouts()
	if defaults.Write <= ShutdownTimeout || defaults.Read <= 0 {
		t.Errorf("default timeouts %+v: the write timeout must exceed every request's own bound (below %s)", defaults, ShutdownTimeout)
	}
	check("component", NewServer("127.0.0.1:0", prometheus.NewRegistry(), logger).httpServer(), defaults)
	check("plain", NewPlainServer("127.0.0.1:0", logger).httpServer(), defaults)
	admin := NewAdminServer("127.0.0.1:0", logger).httpServer()
	if admin.WriteTimeout <= MaxProfileDuration || admin.ReadHeaderTimeout <= 0 || admin.IdleTimeout <= 0 {
		t.Errorf("admin: write timeout %s must exceed the longest profile %s", admin.WriteTimeout, MaxProfileDuration)
	}

	custom := Timeouts{ReadHeader: 3 * time.Second, Read: 40 * time.Second, Write: 90 * time.Second, Idle: time.Minute}
	SetTimeouts(custom)
	t.Cleanup(func() { SetTimeouts(DefaultTimeouts()) })
	check("component after SetTimeouts", NewServer("127.0.0.1:0", prometheus.NewRegistry(), logger).httpServer(), custom)
}

func itoa(n int) string { return strconv.Itoa(n) }

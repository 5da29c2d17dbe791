// Package telemetry serves what SREs read from every Tally component:
// Prometheus metrics on /metrics, liveness on /healthz and readiness on
// /readyz. Readiness runs the component's checks (Kafka reachable,
// ClickHouse answering, partitions held and consumed) so that it fails
// when the component cannot do its job, not only when the process is dead.
//
// These endpoints share the component's public port, so nothing on them
// is costly or secret: /readyz runs its checks at most once per
// ReadinessCacheTTL however often it is called (ready.go), and Go's
// profiles are served only by a separate admin server, off unless an
// address is configured (admin.go). Every server bounds its connections
// with Timeouts (timeouts.go).
package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports why a dependency cannot be used, or nil.
type Check func(ctx context.Context) error

// Server is a component's HTTP server: its API routes plus the telemetry
// endpoints.
type Server struct {
	Mux    *http.ServeMux
	addr   string
	logger *slog.Logger

	mu       sync.Mutex
	checks   map[string]Check
	ln       net.Listener
	timeouts *Timeouts // nil: the process's (SetTimeouts)
	ready    readiness
}

// CheckTimeout bounds one readiness check.
const CheckTimeout = 2 * time.Second

// NewServer returns a server for addr exposing gatherer on /metrics.
func NewServer(addr string, gatherer prometheus.Gatherer, logger *slog.Logger) *Server {
	s := NewPlainServer(addr, logger)
	s.Mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	s.Mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, "ok", nil)
	})
	s.Mux.HandleFunc("GET /readyz", s.serveReady)
	// No profiles here: this port is public (see NewAdminServer).
	return s
}

// NewPlainServer returns a server for addr with an empty Mux: the same
// listening and graceful shutdown, without the telemetry endpoints (for
// a front that only routes requests to components that serve their own).
func NewPlainServer(addr string, logger *slog.Logger) *Server {
	s := &Server{Mux: http.NewServeMux(), addr: addr, logger: logger, checks: map[string]Check{}}
	s.ready.now = time.Now
	return s
}

// AddCheck registers a readiness check under name.
func (s *Server) AddCheck(name string, check Check) {
	s.mu.Lock()
	s.checks[name] = check
	s.mu.Unlock()
	s.ready.forget()
}

func writeStatus(w http.ResponseWriter, code int, status string, checks map[string]string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	body := `{"status":"` + status + `"`
	if len(checks) > 0 {
		names := make([]string, 0, len(checks))
		for n := range checks {
			names = append(names, n)
		}
		sort.Strings(names)
		body += `,"checks":{`
		for i, n := range names {
			if i > 0 {
				body += ","
			}
			body += quote(n) + ":" + quote(checks[n])
		}
		body += "}"
	}
	_, _ = w.Write([]byte(body + "}\n"))
}

// Listen binds the address now, so that a port conflict fails start-up
// rather than a goroutine later; once bound, calling it again does nothing.
// Addr reports the bound address.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return err
	}
	s.ln = ln
	return nil
}

// Addr returns the bound address after Listen.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return s.addr
	}
	return s.ln.Addr().String()
}

// Run serves until ctx is done, then drains in-flight requests for up to
// ShutdownTimeout.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	srv := s.httpServer()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serveErr := <-errc; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return err
}

// httpServer returns the server Run serves with: the Mux, bounded by the
// server's timeouts or else the process's.
func (s *Server) httpServer() *http.Server {
	t := currentTimeouts()
	if s.timeouts != nil {
		t = *s.timeouts
	}
	return &http.Server{Handler: s.Mux, ReadHeaderTimeout: t.ReadHeader, ReadTimeout: t.Read, WriteTimeout: t.Write, IdleTimeout: t.Idle}
}

// ShutdownTimeout bounds how long in-flight requests may finish.
const ShutdownTimeout = 15 * time.Second

package telemetry

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// HTTPMetrics counts and times a component's API requests by route and
// status code: tally_<component>_http_requests_total and
// tally_<component>_http_request_duration_seconds.
type HTTPMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewHTTPMetrics registers the request metrics of component.
func NewHTTPMetrics(reg prometheus.Registerer, component string) *HTTPMetrics {
	f := promauto.With(reg)
	return &HTTPMetrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_" + component + "_http_requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tally_" + component + "_http_request_duration_seconds",
			Help:    "HTTP request latency by route and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "code"}),
	}
}

// CodeClientClosed is the code label of a request whose client went away
// before its answer (nginx's 499, "client closed request"): what the
// handler then wrote reached nobody, and a 503 it answers for a canceled
// ClickHouse read is not a failure of the server, so it must not feed the
// 5xx alerts.
const CodeClientClosed = "499"

// Wrap instruments h under route, a fixed pattern (never the raw path,
// which would put meter keys and ids into label values).
func (m *HTTPMetrics) Wrap(route string, h http.Handler) http.Handler {
	labels := prometheus.Labels{"route": route}
	requests, duration := m.requests.MustCurryWith(labels), m.duration.MustCurryWith(labels)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		// The request's context ends before ServeHTTP returns only when
		// the client went away (or canceled its HTTP/2 stream).
		code := strconv.Itoa(rec.code)
		if r.Context().Err() != nil {
			code = CodeClientClosed
		}
		requests.WithLabelValues(code).Inc()
		duration.WithLabelValues(code).Observe(time.Since(start).Seconds())
	})
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader && code >= 200 { // 1xx are informational, not the answer
		s.code, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the server's writer (ingest
// sets its answer's write deadline through it).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Registry completes a component's metric registry: with neither given, a
// new registry serves as both (tests and embedding); a Registerer without
// the Gatherer that would serve it on /metrics is an error.
func Registry(reg prometheus.Registerer, gatherer prometheus.Gatherer) (prometheus.Registerer, prometheus.Gatherer, error) {
	if reg == nil {
		r := prometheus.NewRegistry()
		reg = r
		if gatherer == nil {
			gatherer = r
		}
	}
	if gatherer == nil {
		return nil, nil, errors.New("a Prometheus Gatherer is needed to serve /metrics")
	}
	return reg, gatherer, nil
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

package telemetry

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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

// Wrap instruments h under route, a fixed pattern (never the raw path,
// which would put meter keys and ids into label values).
func (m *HTTPMetrics) Wrap(route string, h http.Handler) http.Handler {
	labels := prometheus.Labels{"route": route}
	return promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(labels),
		promhttp.InstrumentHandlerDuration(m.duration.MustCurryWith(labels), h))
}

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

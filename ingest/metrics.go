package ingest

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tally-oss/tally/internal/telemetry"
	"github.com/tally-oss/tally/schemas"
)

// metrics are ingest's Prometheus metrics. No label carries an
// organization or customer id: reasons and outcomes only.
type metrics struct {
	http            *telemetry.HTTPMetrics
	eventsAccepted  prometheus.Counter
	eventsRejected  *prometheus.CounterVec
	requestRejected *prometheus.CounterVec
	produceDuration prometheus.Histogram
	produceErrors   prometheus.Counter
	requestEvents   prometheus.Histogram
	// The load limits (limits.go).
	requestsLimited  *prometheus.CounterVec
	inflightRequests prometheus.Gauge
	inflightBytes    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := newMetricSet(reg)
	m.initLabels()
	return m
}

// initLabels exports every known label value at 0 from the start, so that
// the first rejection is an increase rate() sees and the dashboard's and
// alerts' series exist before anything went wrong.
func (m *metrics) initLabels() {
	m.eventsRejected.WithLabelValues(reasonInvalidJSON)
	m.eventsRejected.WithLabelValues(reasonTooLarge)
	m.eventsRejected.WithLabelValues("invalid_other")
	for field := range knownFields {
		m.eventsRejected.WithLabelValues("invalid_" + field)
	}
	for _, r := range []string{requestTooLarge, requestTooMany, requestUnsupported, requestMalformed, requestEmpty, requestOverloaded} {
		m.requestRejected.WithLabelValues(r)
	}
	for _, l := range []string{limitInflightRequests, limitInflightBytes, limitRate} {
		m.requestsLimited.WithLabelValues(l)
	}
}

func newMetricSet(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		http: telemetry.NewHTTPMetrics(reg, "ingest"),
		eventsAccepted: f.NewCounter(prometheus.CounterOpts{
			Name: "tally_ingest_events_accepted_total",
			Help: "Events acknowledged by Kafka and reported accepted to the client.",
		}),
		eventsRejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_ingest_events_rejected_total",
			Help: "Events rejected one by one: invalid_json, invalid_<field> or too_large.",
		}, []string{"reason"}),
		requestRejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_ingest_requests_rejected_total",
			Help: "Requests rejected as a whole before validating events: too_large, too_many, unsupported_media_type, malformed_body, empty, overloaded.",
		}, []string{"reason"}),
		produceDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "tally_ingest_kafka_produce_duration_seconds",
			Help:    "Time from handing a request's records to the Kafka writer until all are acknowledged (or the write failed).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		produceErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "tally_ingest_kafka_produce_errors_total",
			Help: "Requests whose records Kafka did not all acknowledge (answered 503).",
		}),
		requestEvents: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "tally_ingest_request_events",
			Help:    "Events per request, valid and invalid.",
			Buckets: []float64{1, 5, 10, 50, 100, 500, 1000, 5000, 10000},
		}),
		requestsLimited: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_ingest_requests_limited_total",
			Help: "Requests refused by a load limit, by limit: inflight_requests and inflight_bytes (503), rate (429, an organization over ingest.rate-limit-events).",
		}, []string{"limit"}),
		inflightRequests: f.NewGauge(prometheus.GaugeOpts{
			Name: "tally_ingest_inflight_requests",
			Help: "Requests being served on the write routes (bounded by ingest.max-inflight-requests).",
		}),
		inflightBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "tally_ingest_inflight_bytes",
			Help: "Request body bytes reserved by the requests being served (bounded by ingest.max-inflight-bytes).",
		}),
	}
}

// Reasons of tally_ingest_events_rejected_total beyond invalid_<field>.
const (
	reasonInvalidJSON = "invalid_json"
	reasonTooLarge    = "too_large"
)

// Reasons of tally_ingest_requests_rejected_total.
const (
	requestTooLarge    = "too_large"
	requestTooMany     = "too_many"
	requestUnsupported = "unsupported_media_type"
	requestMalformed   = "malformed_body"
	requestEmpty       = "empty"
	requestOverloaded  = "overloaded"
)

// knownFields bounds the reason label: schemas.ParseEvent names one of
// these, and anything new falls into invalid_other rather than growing
// the label set.
var knownFields = map[string]bool{
	"event": true, "id": true, "type": true, "customer_id": true, "subject": true,
	"time": true, "source": true, "properties": true, "data": true,
}

// rejectReason maps a ParseEvent error for raw to a metric reason. It
// runs only for rejected events, so re-checking the JSON costs nothing on
// the accepted path.
func rejectReason(err error, raw []byte) string {
	var fe *schemas.FieldError
	if !errors.As(err, &fe) {
		return "invalid_other"
	}
	if fe.Field == "event" && !json.Valid(raw) {
		return reasonInvalidJSON
	}
	// A property is named by its path (properties.usage.tokens): counted
	// as a problem of the member that holds it.
	field, _, _ := strings.Cut(fe.Field, ".")
	field, _, _ = strings.Cut(field, "[")
	if knownFields[field] {
		return "invalid_" + field
	}
	return "invalid_other"
}

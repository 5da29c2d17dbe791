package query

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tally-oss/tally/internal/telemetry"
	"github.com/tally-oss/tally/schemas"
)

// metrics are the query service's Prometheus metrics. Labels are routes
// and operations, never an organization, meter or customer.
type metrics struct {
	http               *telemetry.HTTPMetrics
	clickhouseDuration *prometheus.HistogramVec
	clickhouseErrors   *prometheus.CounterVec
	rowsReturned       prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		http: telemetry.NewHTTPMetrics(reg, "query"),
		clickhouseDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tally_query_clickhouse_duration_seconds",
			Help:    "Time spent in ClickHouse by operation: read_usage, meters_get, meters_list, meters_create, meters_delete, read_dead_letters, read_status, ping.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"operation"}),
		clickhouseErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_query_clickhouse_errors_total",
			Help: "ClickHouse operations that failed, by operation.",
		}, []string{"operation"}),
		rowsReturned: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "tally_query_rows_returned",
			Help:    "Rows (windows times groups) returned by one usage query.",
			Buckets: []float64{0, 1, 10, 100, 1000, 10_000, 100_000, 1_000_000},
		}),
	}
}

// observeClickHouse records one ClickHouse operation that began at start.
func (m *metrics) observeClickHouse(operation string, start time.Time, err error) {
	m.clickhouseDuration.WithLabelValues(operation).Observe(time.Since(start).Seconds())
	if err != nil {
		m.clickhouseErrors.WithLabelValues(operation).Inc()
	}
}

// ObserveClickHouse implements usage.Observer.
func (m *metrics) ObserveClickHouse(operation string, start time.Time, err error) {
	m.observeClickHouse(operation, start, err)
}

// ObserveRows implements usage.Observer.
func (m *metrics) ObserveRows(n int) { m.rowsReturned.Observe(float64(n)) }

// timedStore is a MeterStore that times every call against ClickHouse; it
// wraps the store rather than timing at each call site.
type timedStore struct {
	store   MeterStore
	metrics *metrics
}

var _ MeterStore = timedStore{}

func (s timedStore) Create(ctx context.Context, orgID string, m schemas.Meter) (schemas.Meter, error) {
	start := time.Now()
	out, err := s.store.Create(ctx, orgID, m)
	s.metrics.observeClickHouse("meters_create", start, ignoreExpected(err))
	return out, err
}

func (s timedStore) Get(ctx context.Context, orgID, key string) (schemas.Meter, error) {
	start := time.Now()
	out, err := s.store.Get(ctx, orgID, key)
	s.metrics.observeClickHouse("meters_get", start, ignoreExpected(err))
	return out, err
}

func (s timedStore) List(ctx context.Context, orgID string) ([]schemas.Meter, error) {
	start := time.Now()
	out, err := s.store.List(ctx, orgID)
	s.metrics.observeClickHouse("meters_list", start, err)
	return out, err
}

func (s timedStore) Delete(ctx context.Context, orgID, key string) error {
	start := time.Now()
	err := s.store.Delete(ctx, orgID, key)
	s.metrics.observeClickHouse("meters_delete", start, ignoreExpected(err))
	return err
}

package aggregator

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tally-oss/tally/schemas"
)

// Outcomes of tally_aggregator_events_total, one per record.
const (
	outcomeMetered      = "metered"       // at least one reading, no dead letter
	outcomeDuplicate    = "duplicate"     // a later version of a stored identity: changes nothing
	outcomeDeadLettered = "dead_lettered" // unreadable, or some meter could not meter it
	outcomeUnmatched    = "unmatched"     // stored, but no meter counts it
)

// Tables (and other operations) named in metric labels.
const (
	tableEvents      = "events"
	tableReadings    = "readings"
	tableDeadLetters = "dead_letters"

	opLookupEvents       = "lookup_events"
	opLoadMeters         = "load_meters"
	opPublishDeadLetters = "publish_dead_letters"
	opBackfill           = "backfill"
)

// Reasons of tally_aggregator_parked_records_total.
const (
	parkedEvent       = "unwritable_event"
	parkedReading     = "unwritable_reading"
	parkedDeadLetter  = "unwritable_dead_letter"
	parkedUnpublished = "unpublishable_dead_letter"
	parkedLoggedOnly  = "dead_letter_logged_only" // not even a shortened copy could be written or published
)

// metrics are the aggregator's Prometheus metrics. Labels are outcomes,
// reasons, tables and partition numbers; never an organization or customer.
type metrics struct {
	events          *prometheus.CounterVec
	lag             *prometheus.GaugeVec
	assigned        prometheus.Gauge
	insertDuration  *prometheus.HistogramVec
	insertRows      *prometheus.HistogramVec
	insertRetries   *prometheus.CounterVec
	otherRetries    *prometheus.CounterVec
	pipelineLatency prometheus.Histogram
	deadLetters     *prometheus.CounterVec
	commits         prometheus.Counter
	commitErrors    prometheus.Counter
	rebalances      prometheus.Counter
	batchDuration   prometheus.Histogram
	backfills       prometheus.Counter
	parked          *prometheus.CounterVec
	invalidMeters   prometheus.Gauge
	systemic        *prometheus.CounterVec

	lookupDuration       prometheus.Histogram
	lookupRowsRead       prometheus.Histogram
	lookupRowsReadPerKey prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := newMetricSet(reg)
	m.initLabels()
	return m
}

// deadLetterReasons are the reasons a dead letter can carry.
var deadLetterReasons = []string{
	schemas.ReasonValueMissing, schemas.ReasonValueNotNumber, schemas.ReasonValueOutOfRange,
	schemas.ReasonValueTooPrecise, schemas.ReasonValueNotScalar, schemas.ReasonGroupNotScalar,
	schemas.ReasonPropertiesJSON, schemas.ReasonRecordMalformed, schemas.ReasonMeterInvalid,
	schemas.ReasonUnwritable, reasonEvaluationFailed,
}

// initLabels exports every known label value at 0 from the start. A
// series that appears only with its first event hides that first
// increase from rate() and increase(), and leaves the dashboard and the
// alerts on a metric that does not exist yet (observability_test.go in
// cmd/tally checks they only use exported metrics).
func (m *metrics) initLabels() {
	for _, o := range []string{outcomeMetered, outcomeDuplicate, outcomeDeadLettered, outcomeUnmatched} {
		m.events.WithLabelValues(o)
	}
	for _, r := range deadLetterReasons {
		m.deadLetters.WithLabelValues(r)
	}
	for _, table := range []string{tableEvents, tableReadings, tableDeadLetters} {
		m.insertRetries.WithLabelValues(table)
		m.insertDuration.WithLabelValues(table)
		m.insertRows.WithLabelValues(table)
		m.systemic.WithLabelValues("insert_" + table)
	}
	m.systemic.WithLabelValues(opPublishDeadLetters)
	for _, op := range []string{opLookupEvents, opLoadMeters, opPublishDeadLetters, opBackfill} {
		m.otherRetries.WithLabelValues(op)
	}
	for _, r := range []string{parkedEvent, parkedReading, parkedDeadLetter, parkedUnpublished, parkedLoggedOnly} {
		m.parked.WithLabelValues(r)
	}
}

func newMetricSet(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		events: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_aggregator_events_total",
			Help: "Records processed, by outcome: metered, duplicate, dead_lettered or unmatched.",
		}, []string{"outcome"}),
		lag: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tally_aggregator_consumer_lag_messages",
			Help: "High watermark minus committed offset of each partition this member holds.",
		}, []string{"partition"}),
		assigned: f.NewGauge(prometheus.GaugeOpts{
			Name: "tally_aggregator_assigned_partitions",
			Help: "Partitions of the event topic this member holds in the current generation.",
		}),
		insertDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tally_aggregator_insert_duration_seconds",
			Help:    "Duration of one ClickHouse insert attempt, by table.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"table"}),
		insertRows: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tally_aggregator_insert_batch_rows",
			Help:    "Rows of one successful ClickHouse insert, by table.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10), // 1 .. 262144
		}, []string{"table"}),
		insertRetries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_aggregator_insert_retries_total",
			Help: "Failed ClickHouse inserts that are retried, by table.",
		}, []string{"table"}),
		otherRetries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_aggregator_retries_total",
			Help: "Other failed operations that are retried: lookup_events, load_meters, publish_dead_letters, backfill.",
		}, []string{"operation"}),
		pipelineLatency: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "tally_aggregator_pipeline_latency_seconds",
			Help:    "Time from acceptance at ingest until the event's batch was stored and committed.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		deadLetters: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_aggregator_dead_letters_total",
			Help: "Dead letters written (one per event and meter), by reason.",
		}, []string{"reason"}),
		commits: f.NewCounter(prometheus.CounterOpts{
			Name: "tally_aggregator_commits_total",
			Help: "Offsets committed after a batch was stored.",
		}),
		commitErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "tally_aggregator_commit_errors_total",
			Help: "Offset commits that failed; the next batch's commit covers them, or the batch is redelivered.",
		}),
		rebalances: f.NewCounter(prometheus.CounterOpts{
			Name: "tally_aggregator_rebalances_total",
			Help: "Consumer group generations this member joined.",
		}),
		batchDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "tally_aggregator_batch_duration_seconds",
			Help:    "Time to process one batch, from decoding to the committed offset.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		backfills: f.NewCounter(prometheus.CounterOpts{
			Name: "tally_aggregator_backfills_total",
			Help: "Meter revisions whose readings were computed from the stored events.",
		}),
		parked: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_aggregator_parked_records_total",
			Help: "Rows set aside because writing them failed for a reason retrying cannot fix, so that they do not stall the partition: " +
				"unwritable_event, unwritable_reading (each dead-lettered as unwritable), unwritable_dead_letter, unpublishable_dead_letter (a shortened copy is written or published instead), " +
				"dead_letter_logged_only (not even the shortened copy could be: the dead letter is only in the log).",
		}, []string{"reason"}),
		invalidMeters: f.NewGauge(prometheus.GaugeOpts{
			Name: "tally_aggregator_invalid_meters",
			Help: "Stored meters whose definition no longer validates, as of the last load; their events are dead-lettered as meter_invalid until fixed.",
		}),
		systemic: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_aggregator_systemic_write_failures_total",
			Help: "Rounds of a write whose every row failed for a reason about rows while a row known to be writable failed too (a changed table or topic): " +
				"nothing is parked, the write is retried and the partition waits until the table or topic is fixed.",
		}, []string{"operation"}),
		lookupDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "tally_aggregator_lookup_duration_seconds",
			Help:    "Duration of one first-version lookup of a batch's identities in ClickHouse, successful or not.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		lookupRowsRead: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "tally_aggregator_lookup_rows_read",
			Help:    "Rows ClickHouse read for one successful first-version lookup, as its progress reports (the batch's keys included).",
			Buckets: prometheus.ExponentialBuckets(100, 4, 12), // 100 .. 419M
		}),
		lookupRowsReadPerKey: f.NewHistogram(prometheus.HistogramOpts{
			Name: "tally_aggregator_lookup_rows_read_per_key",
			Help: "Rows ClickHouse read for one successful first-version lookup divided by the keys it looked up: " +
				"it must not grow with the stored events.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 16), // 1 .. 32768
		}),
	}
}

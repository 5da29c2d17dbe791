// Package ingest is the front of the pipeline: it accepts usage events over
// HTTP (POST /api/v1/events), validates each one with schemas.ParseEvent,
// and writes the valid ones to Kafka, keyed by organization and customer,
// for the aggregator. A request is answered 202 only after Kafka has
// acknowledged every accepted event on all in-sync replicas; if it has not,
// the answer is 503, given only once Kafka is done with the request's
// records (publisher.go): they may or may not have been
// recorded, and the client sends the same events again, unchanged (the
// first version of an identity wins, so a changed re-send is ignored when
// the first was recorded).
//
// Limits (issue 6): numbers in properties have at most 100 characters, an
// exponent within ±1000 and a magnitude below 10^26; properties nest at
// most 32 levels; member names are case-sensitive and appear once
// (schemas/event_json.go). A request waits for Kafka at most
// ingest.produce-timeout (plus scheduling): its records wait at most half
// of it for the partition's produce request under way, and are then
// either taken into the next one, whose ingest.kafka-max-attempts
// attempts end by the request's deadline, or never sent (publisher.go).
// Load limits (limits.go): ingest.max-inflight-requests and
// ingest.max-inflight-bytes answer 503 at once beyond them,
// ingest.rate-limit-events answers an organization over its rate 429; all
// with Retry-After.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/kafkaclient"
	"github.com/tally-oss/tally/internal/telemetry"
)

// Deps are what the service is built from.
type Deps struct {
	Kafka      *kafkaclient.Config
	Keys       *httpapi.Keys
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Publisher is optional; nil builds the kafka-go writer from Kafka.
	Publisher Publisher
	// Catalog is optional; without it the compatible routes that must look
	// up a meter or subscription answer 503.
	Catalog Catalog
}

// Service is the ingest HTTP server with its Kafka writer.
type Service struct {
	logger         *slog.Logger
	server         *telemetry.Server
	events         *handler
	closePublisher func() error // nil for an injected Publisher: its owner closes it
	patterns       []string     // every API route registered, for route-complete tests
}

// New builds the service; it does not connect to Kafka yet.
func New(cfg Config, deps Deps) (*Service, error) {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if deps.Keys == nil || deps.Keys.Len() == 0 {
		errs = append(errs, errors.New("ingest needs at least one API key: every request would be refused"))
	}
	if deps.Kafka == nil && deps.Publisher == nil {
		errs = append(errs, errors.New("ingest needs the Kafka settings or a Publisher"))
	}
	var err error
	if deps.Registerer, deps.Gatherer, err = telemetry.Registry(deps.Registerer, deps.Gatherer); err != nil {
		errs = append(errs, fmt.Errorf("ingest: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "ingest")

	s := &Service{logger: logger, server: telemetry.NewServer(cfg.ListenAddr, deps.Gatherer, logger)}
	publisher := deps.Publisher
	if publisher == nil {
		kp := newKafkaPublisher(deps.Kafka, cfg)
		publisher, s.closePublisher = kp, kp.Close
	}
	if deps.Kafka != nil {
		// telemetry caches every readiness result for a second, so
		// probes cost Kafka at most one metadata request a second.
		s.server.AddCheck("kafka", deps.Kafka.Ping)
	}

	m := newMetrics(deps.Registerer)
	s.events = &handler{cfg: cfg, publisher: publisher, catalog: deps.Catalog, metrics: m, logger: logger, now: time.Now,
		rates: newRateLimits(cfg.RateLimitEvents, cfg.rateLimitBurst())}
	// One in-flight limit for all write routes, outside authentication so
	// that a flood of unauthenticated requests is bounded too; metrics wrap
	// both so that 401s and 503s are counted.
	limits := &inflight{maxRequests: int64(cfg.MaxInflightRequests), maxBytes: cfg.MaxInflightBytes, metrics: m}
	s.handle("POST "+EventsRoute, m.http.Wrap(EventsRoute, limits.wrap(httpapi.Authenticate(deps.Keys, s.events))))
	s.handle(EventsRoute, m.http.Wrap(EventsRoute, http.HandlerFunc(methodNotAllowed)))
	// The compatible write routes: Lago's batches (its single events come
	// to EventsRoute) and PriceOps usage records.
	for route, h := range map[string]http.HandlerFunc{
		LagoBatchRoute:     s.events.serveLagoBatch,
		PriceOpsUsageRoute: s.events.priceOpsUsage,
	} {
		s.handle("POST "+route, m.http.Wrap(route, limits.wrap(httpapi.Authenticate(deps.Keys, h))))
		s.handle(route, m.http.Wrap(route, http.HandlerFunc(methodNotAllowed)))
	}
	return s, nil
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", http.MethodPost)
	httpapi.WriteError(w, http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed, r.Method+" is not allowed here; use POST")
}

// handle registers an API route and remembers its pattern.
func (s *Service) handle(pattern string, h http.Handler) {
	s.patterns = append(s.patterns, pattern)
	s.server.Mux.Handle(pattern, h)
}

// Patterns returns the pattern of every API route the service registered.
func (s *Service) Patterns() []string { return slices.Clone(s.patterns) }

// Handler returns the whole HTTP handler: the events API, /metrics,
// /healthz and /readyz.
func (s *Service) Handler() http.Handler { return s.server.Mux }

// Listen binds the listen address, so that a port conflict fails start-up.
// Calling it again does nothing.
func (s *Service) Listen() error { return s.server.Listen() }

// Addr returns the bound address after Listen.
func (s *Service) Addr() string { return s.server.Addr() }

// Run serves until ctx is done, then shuts down in this order:
//  1. stop accepting and drain in-flight requests (telemetry.Server.Run):
//     each finishes reading and validating its body, hands its records to
//     the writer and gets Kafka's real answer;
//  2. close the Kafka writer.
//
// The other order would make every request still uploading or validating
// at shutdown fail with io.ErrClosedPipe: a needless 503 and retry for
// events the writer could have taken.
func (s *Service) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.logger.Info("serving events API", "addr", s.Addr())
	err := s.server.Run(ctx)
	if s.closePublisher != nil {
		err = errors.Join(err, s.closePublisher())
	}
	return err // logged by the caller, which decides what stopping means
}

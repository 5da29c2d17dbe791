// Package query is the end of the pipeline: it serves, over HTTP, what
// the aggregator's readings in ClickHouse mean: the meters API and usage
// queries, the catalog (customers, plans, subscriptions) with usage priced
// by subscription, and the APIs of Lago, PriceOps and Measure on the same
// data.
//
// Handlers only translate HTTP. Beneath them: query/usage (the usage query,
// its SQL and the ClickHouse reader), query/rating (pure pricing),
// query/billing (subscription usage with amounts), the meter and catalog
// stores, and one package per compatible API (query/lago, query/priceops,
// query/measure). Every route is authenticated and scoped to the API key's
// organization, which is the first condition of every query; every value
// in SQL is a bound parameter. Usage is aggregated from the raw,
// deduplicated readings at query time, so sums are exact decimals,
// averages are never averages of averages, and windows and billing periods
// follow IANA time zones across DST changes.
package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/internal/telemetry"
	"github.com/tally-oss/tally/query/billing"
	"github.com/tally-oss/tally/query/console"
	"github.com/tally-oss/tally/query/inspect"
	"github.com/tally-oss/tally/query/lago"
	"github.com/tally-oss/tally/query/measure"
	"github.com/tally-oss/tally/query/priceops"
	"github.com/tally-oss/tally/query/usage"
)

// Routes of the query API.
const (
	MetersRoute = "/api/v1/meters"
	MeterRoute  = "/api/v1/meters/{key}"
	UsageRoute  = "/api/v1/meters/{key}/query"
)

// Deps are what the service is built from. The caller owns the ClickHouse
// connection and closes it after Run returns.
type Deps struct {
	ClickHouse driver.Conn
	Keys       *httpapi.Keys
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
}

// Service is the query HTTP server.
type Service struct {
	logger    *slog.Logger
	server    *telemetry.Server
	store     *meterstore.Store
	meters    metersFile // from Config.MetersFile, applied by Run
	usageHTTP *usageHandler
	probes    *prober  // the status's probes of the other components
	patterns  []string // every API route registered, for route-complete tests
}

// New builds the service. It reads and validates the meters file, if
// any, so that a broken file fails start-up before anything is served; the
// meters are written to ClickHouse when Run starts.
func New(cfg Config, deps Deps) (*Service, error) {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if deps.ClickHouse == nil {
		errs = append(errs, errors.New("query needs a ClickHouse connection"))
	}
	if deps.Keys == nil || deps.Keys.Len() == 0 {
		errs = append(errs, errors.New("query needs at least one API key: every request would be refused"))
	}
	var err error
	if deps.Registerer, deps.Gatherer, err = telemetry.Registry(deps.Registerer, deps.Gatherer); err != nil {
		errs = append(errs, fmt.Errorf("query: %w", err))
	}
	var file metersFile
	if cfg.MetersFile != "" {
		if file, err = readMetersFile(cfg.MetersFile); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "query")

	m := newMetrics(deps.Registerer)
	s := &Service{
		logger: logger,
		server: telemetry.NewServer(cfg.ListenAddr, deps.Gatherer, logger),
		store:  meterstore.New(deps.ClickHouse),
		meters: file,
	}
	conn := deps.ClickHouse
	s.server.AddCheck("clickhouse", func(ctx context.Context) error {
		start := time.Now()
		err := conn.Ping(ctx)
		m.observeClickHouse("ping", start, err)
		return err
	})

	meterStore := timedStore{store: s.store, metrics: m}
	catalog := catalogstore.New(conn)
	meters := &metersHandler{store: meterStore, plans: catalog, logger: logger}
	usageSvc := usage.NewService(meterStore, usage.NewClickHouseReader(conn, cfg.MaxRows, m).WithLogger(logger), meterstore.ErrNotFound)
	usageH := &usageHandler{
		meters: meters, usage: usageSvc,
		maxRows: cfg.MaxRows, timeout: cfg.Timeout, logger: logger, now: time.Now,
	}
	billingSvc := billing.New(catalog, usageSvc, catalogstore.ErrNotFound, cfg.MaxRows)
	s.usageHTTP = usageH
	// Metrics wrap authentication so that 401s are counted too; the route
	// label is the pattern, never the path with its meter key.
	handle := func(pattern, route string, h http.HandlerFunc) {
		s.patterns = append(s.patterns, pattern)
		s.server.Mux.Handle(pattern, m.http.Wrap(route, httpapi.Authenticate(deps.Keys, h)))
	}
	handle("POST "+MetersRoute, MetersRoute, meters.create)
	handle("GET "+MetersRoute, MetersRoute, meters.list)
	handle(MetersRoute, MetersRoute, methodNotAllowed("GET, POST"))
	handle("GET "+MeterRoute, MeterRoute, meters.get)
	handle("DELETE "+MeterRoute, MeterRoute, meters.delete)
	handle(MeterRoute, MeterRoute, methodNotAllowed("GET, DELETE"))
	handle("GET "+UsageRoute, UsageRoute, usageH.ServeHTTP)
	handle(UsageRoute, UsageRoute, methodNotAllowed("GET"))
	// What the pipeline did with the organization's events: dead letters
	// and the status at a glance.
	inspector := inspect.NewReader(conn, m)
	deadLetters := &deadLettersHandler{reader: inspector, timeout: cfg.Timeout, logger: logger, now: time.Now}
	handle("GET "+DeadLettersRoute, DeadLettersRoute, deadLetters.ServeHTTP)
	handle(DeadLettersRoute, DeadLettersRoute, methodNotAllowed("GET"))
	s.probes = newProber(cfg.StatusComponents, logger)
	status := &statusHandler{
		reader: inspector, meters: meterStore, timeout: cfg.Timeout, logger: logger, now: time.Now,
		self: s.server.Readiness, probes: s.probes,
	}
	handle("GET "+StatusRoute, StatusRoute, status.ServeHTTP)
	handle(StatusRoute, StatusRoute, methodNotAllowed("GET"))
	// The catalog with usage priced, then the APIs of the products Tally
	// is a drop-in for, each mapping its shapes onto the same services.
	var routes []httpapi.Route
	routes = append(routes, catalogRoutes(catalogDeps{
		store: catalog, meters: meterStore, billing: billingSvc, logger: logger, timeout: cfg.Timeout, now: time.Now,
	})...)
	routes = append(routes, lago.Routes(lago.Deps{Billing: billingSvc, Catalog: catalog, Logger: logger, Timeout: cfg.Timeout})...)
	routes = append(routes, priceops.Routes(priceops.Deps{Catalog: catalog, Logger: logger, Timeout: cfg.Timeout})...)
	routes = append(routes, measure.Routes(measure.Deps{
		Billing: billingSvc, Usage: usageSvc, Idempotency: catalog, Logger: logger, Timeout: cfg.Timeout,
		MaxRows: cfg.MaxRows,
	})...)
	for _, r := range routes {
		handle(r.Pattern, r.Path(), r.Handler)
	}
	handle("/api/", "other", notFound)
	// The usage console: pages that call the API above from the browser
	// with the key the user enters; no data of its own, so no key here.
	consoleHandler, err := console.New()
	if err != nil {
		return nil, err // the embedded pages do not parse: a build mistake
	}
	s.server.Mux.Handle(console.Path, m.http.Wrap(console.Path, consoleHandler))
	s.server.Mux.Handle(console.Path+"/", m.http.Wrap(console.Path, consoleHandler))
	return s, nil
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		httpapi.WriteError(w, http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed,
			r.Method+" is not allowed here; use "+allow)
	}
}

func notFound(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteError(w, http.StatusNotFound, httpapi.CodeNotFound,
		"no API route "+r.URL.Path+"; meters are at "+MetersRoute+", usage at "+UsageRoute)
}

// Patterns returns the pattern of every API route the service registered
// ("GET /api/v1/meters", and method-less ones that answer 405 or 404).
func (s *Service) Patterns() []string { return slices.Clone(s.patterns) }

// Handler returns the whole HTTP handler: the API, /metrics, /healthz and
// /readyz.
func (s *Service) Handler() http.Handler { return s.server.Mux }

// Listen binds the listen address, so that a port conflict fails start-up.
// Calling it again does nothing.
func (s *Service) Listen() error { return s.server.Listen() }

// Addr returns the bound address after Listen.
func (s *Service) Addr() string { return s.server.Addr() }

// Run applies the meters file, then serves until ctx is done and drains
// in-flight requests. The file is applied before the first request is
// served, so no query sees the meters half-loaded; connections that arrive
// meanwhile wait in the listen backlog.
func (s *Service) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	if len(s.meters) > 0 {
		if err := s.meters.apply(ctx, s.store); err != nil {
			return err
		}
		s.logger.Info("applied meters file", "organizations", len(s.meters))
	}
	s.logger.Info("serving query API", "addr", s.Addr())
	return s.server.Run(ctx) // logged by the caller, which decides what stopping means
}

package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/telemetry"
	"github.com/tally-oss/tally/query/console"
)

// defaultAPIAddr is the one base URL of `tally all`: every public route of
// ingest and query, so that an integration written for Lago, PriceOps or
// Measure points at one address.
const defaultAPIAddr = "127.0.0.1:8000"

// apiGateway serves every public route on one address, routing by path:
// the ingest service's write routes to its handler, everything else to
// the query service. Both handlers authenticate and count their requests
// themselves, so the gateway adds nothing but the dispatch; the
// per-service ports stay, with /metrics, /healthz and /readyz.
type apiGateway struct {
	server *telemetry.Server
	logger *slog.Logger
}

func newAPIGateway(addr string, ingestPatterns []string, ingest, query http.Handler, logger *slog.Logger) *apiGateway {
	g := &apiGateway{server: telemetry.NewPlainServer(addr, logger), logger: logger.With("component", "api")}
	for _, p := range ingestPatterns {
		g.server.Mux.Handle(p, ingest)
	}
	g.server.Mux.Handle("/api/", query)
	// The usage console is the query service's; it calls the API on this
	// same address.
	g.server.Mux.Handle(console.Path, query)
	g.server.Mux.Handle(console.Path+"/", query)
	// /metrics and /readyz stay on the components' own ports, and Go's
	// profiles on the admin address if any: they are for operators, not
	// for the public base URL.
	g.server.Mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, http.StatusNotFound, httpapi.CodeNotFound,
			"no route "+r.URL.Path+" here: the API is under /api/, the usage console at "+console.Path+"; metrics and health are on each component's port")
	})
	return g
}

// Handler returns the dispatching handler.
func (g *apiGateway) Handler() http.Handler { return g.server.Mux }

// Listen binds the address; calling it again does nothing.
func (g *apiGateway) Listen() error { return g.server.Listen() }

// Addr returns the bound address after Listen.
func (g *apiGateway) Addr() string { return g.server.Addr() }

// Run serves until ctx is done, then lets requests in flight finish.
func (g *apiGateway) Run(ctx context.Context) error {
	if err := g.Listen(); err != nil {
		return err
	}
	g.logger.Info("serving every API route on one address", "addr", g.Addr())
	return g.server.Run(ctx)
}

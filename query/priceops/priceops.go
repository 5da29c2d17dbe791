// Package priceops serves the read side of the PriceOps integration API
// (../shared/seeds/priceops-customers-and-usage-api.txt) on Tally's
// catalog: GET /api/v1/integration/organization/{ORG_ID}/customers lists
// the customers that have a subscription, with their plans and the meter
// keys ("resources") those plans charge. The write side, PriceOps usage
// records, is an ingest route (ingest/priceops.go), because it produces
// events to Kafka.
//
// PriceOps names the organization in the path; Tally takes it from the
// API key. An ORG_ID other than the key's organization is 403 with no
// data, so a path can never reach another organization's catalog.
package priceops

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

// CustomersRoute is PriceOps' customers endpoint.
const CustomersRoute = "/api/v1/integration/organization/{org_id}/customers"

// Catalog is what the customers list reads; *catalogstore.Store
// satisfies it.
type Catalog interface {
	// ListSubscriptions returns subscriptions sorted by external_id,
	// terminated ones included, after f.After and at most f.Limit.
	ListSubscriptions(ctx context.Context, orgID string, f catalogstore.SubscriptionFilter) ([]schemas.Subscription, error)
	// GetPlan returns a live plan or an error wrapping
	// catalogstore.ErrNotFound.
	GetPlan(ctx context.Context, orgID, code string) (schemas.Plan, error)
}

var _ Catalog = (*catalogstore.Store)(nil)

// Deps are what the routes are built from.
type Deps struct {
	Catalog Catalog
	Logger  *slog.Logger
	// Timeout bounds the catalog reads of one request (0: no bound beyond
	// the client's connection).
	Timeout time.Duration
	// Now is the clock subscription statuses are derived at; nil is
	// time.Now.
	Now func() time.Time
}

// Routes returns PriceOps' read routes, to be served behind
// httpapi.Authenticate.
func Routes(d Deps) []httpapi.Route {
	h := newHandler(d)
	return []httpapi.Route{{Pattern: "GET " + CustomersRoute, Handler: h.customers}}
}

// handler serves the customers list.
type handler struct {
	catalog Catalog
	logger  *slog.Logger
	timeout time.Duration
	now     func() time.Time
	// pageSize is how many subscriptions one catalog read returns;
	// maxSubscriptions bounds the subscriptions one answer holds (see
	// MaxSubscriptions). Fields so that tests can make them small.
	pageSize         int
	maxSubscriptions int
}

func newHandler(d Deps) *handler {
	h := &handler{catalog: d.Catalog, logger: d.Logger, timeout: d.Timeout, now: d.Now,
		pageSize: subscriptionsPage, maxSubscriptions: MaxSubscriptions}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	h.logger = h.logger.With("api", "priceops")
	if h.now == nil {
		h.now = time.Now
	}
	return h
}

// sameOrg answers 403 unless the path's ORG_ID is the key's organization.
// The message does not say whether the other organization exists.
func sameOrg(w http.ResponseWriter, r *http.Request) (org string, ok bool) {
	org = httpapi.OrgID(r.Context())
	if org == "" {
		httpapi.WriteError(w, http.StatusInternalServerError, httpapi.CodeInternal, "request has no organization")
		return "", false
	}
	if r.PathValue("org_id") != org {
		httpapi.WriteError(w, http.StatusForbidden, httpapi.CodeForbidden,
			"ORG_ID in the path is not the organization of this API key; use your own organization id ("+org+")")
		return "", false
	}
	return org, true
}

// writeCatalogError answers a failed catalog read as chclient.Classify
// says and logs it, once, here: a timeout or an unreachable ClickHouse is
// 503 (retry later), anything else 500.
func (h *handler) writeCatalogError(w http.ResponseWriter, r *http.Request, err error) {
	switch chclient.Classify(r.Context(), err) {
	case chclient.FailureCanceled:
		h.logger.Debug("priceops customers: client gone", "path", r.URL.Path)
		httpapi.WriteError(w, http.StatusServiceUnavailable, httpapi.CodeUnavailable, "request canceled")
	case chclient.FailureTimeout:
		h.logger.Warn("priceops customers: timed out", "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		httpapi.WriteError(w, http.StatusServiceUnavailable, httpapi.CodeUnavailable, "the catalog did not answer in time; retry")
	case chclient.FailureUnavailable:
		h.logger.Error("priceops customers: read catalog", "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		httpapi.WriteError(w, http.StatusServiceUnavailable, httpapi.CodeUnavailable, "cannot read the catalog (ClickHouse); retry later")
	default:
		h.logger.Error("priceops customers: read catalog", "path", r.URL.Path, "err", err)
		httpapi.WriteError(w, http.StatusInternalServerError, httpapi.CodeInternal, "reading the catalog failed; the error is logged")
	}
}

// Package lago serves Lago's read API on Tally's catalog and usage, so
// that a Lago integration pointed at Tally keeps working: GET
// /api/v1/customers/{external_customer_id}/current_usage prices the
// subscription's current billing period with query/billing and answers
// in Lago's customer_usage shape, with Lago's error shapes. Lago's event
// ingestion is served by the ingest component (ingest/lago.go).
package lago

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/query/billing"
	"github.com/tally-oss/tally/schemas"
)

// CurrentUsageRoute is Lago's current usage route.
const CurrentUsageRoute = "GET /api/v1/customers/{external_customer_id}/current_usage"

// Catalog is what the routes read of the catalog besides what billing
// loads: whether the customer in the path exists, to tell Lago's
// customer_not_found from subscription_not_found. *catalogstore.Store
// satisfies it; a missing customer is an error wrapping
// catalogstore.ErrNotFound.
type Catalog interface {
	GetCustomer(ctx context.Context, orgID, externalID string) (schemas.Customer, error)
}

var _ Catalog = (*catalogstore.Store)(nil)

// Deps are what the routes are built from.
type Deps struct {
	Billing *billing.Service
	Catalog Catalog
	Logger  *slog.Logger
	// Timeout bounds one request's catalog and ClickHouse reads; 0 means
	// no bound beyond the client's.
	Timeout time.Duration
}

// Routes returns Lago's read routes; the query service adds
// authentication (the organization comes from the API key) and metrics.
func Routes(d Deps) []httpapi.Route {
	h := &handler{billing: d.Billing, catalog: d.Catalog, logger: d.Logger, timeout: d.Timeout}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	h.logger = h.logger.With("api", "lago")
	return []httpapi.Route{{Pattern: CurrentUsageRoute, Handler: h.currentUsage}}
}

type handler struct {
	billing *billing.Service
	catalog Catalog
	logger  *slog.Logger
	timeout time.Duration
}

// currentUsage answers {"customer_usage": {...}}. Like Lago:
//   - external_subscription_id is required (422 naming it);
//   - a customer that is neither in the catalog nor named by the
//     subscription is customer_not_found; a subscription that does not
//     exist, or is another customer's, is subscription_not_found (404);
//   - a subscription that is not active (pending, terminated) has no
//     current usage: 405 no_active_subscription;
//   - ClickHouse unreachable, busy or slower than the timeout is 503 with
//     Retry-After, which a client retries (failureOf).
//
// A customer missing from the catalog is served when the subscription
// names it: events are metered for customers the catalog does not hold.
func (h *handler) currentUsage(w http.ResponseWriter, r *http.Request) {
	org := httpapi.OrgID(r.Context())
	customerID := r.PathValue("external_customer_id")
	subID := r.URL.Query().Get("external_subscription_id")
	if subID == "" {
		writeValidation(w, map[string][]string{"external_subscription_id": {"value_is_mandatory"}})
		return
	}
	ctx := r.Context()
	if h.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.timeout)
		defer cancel()
	}

	sub, err := h.billing.Load(ctx, org, subID)
	switch {
	case errors.Is(err, billing.ErrSubscriptionNotFound):
		h.notFound(ctx, w, org, customerID)
		return
	case errors.Is(err, billing.ErrPlanNotFound):
		writeNotFound(w, "plan")
		return
	case err != nil:
		h.failed(ctx, w, org, "load the subscription", err)
		return
	}
	if sub.Subscription.ExternalCustomerID != customerID {
		h.notFound(ctx, w, org, customerID)
		return
	}
	if sub.Subscription.Status != schemas.StatusActive {
		writeMethodNotAllowed(w, "no_active_subscription")
		return
	}
	period, err := h.billing.Period(sub, billing.PeriodRequest{Which: billing.Current})
	if err != nil {
		h.failed(ctx, w, org, "billing period", err)
		return
	}
	usage, err := h.billing.Price(ctx, org, sub, period)
	if err != nil {
		h.failed(ctx, w, org, "price the period", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, struct {
		CustomerUsage CustomerUsage `json:"customer_usage"`
	}{customerUsage(org, usage)})
}

// notFound answers a subscription that the path's customer does not have:
// customer_not_found when the catalog has no such customer either, else
// subscription_not_found.
func (h *handler) notFound(ctx context.Context, w http.ResponseWriter, org, customerID string) {
	_, err := h.catalog.GetCustomer(ctx, org, customerID)
	switch {
	case errors.Is(err, catalogstore.ErrNotFound):
		writeNotFound(w, "customer")
	case err != nil:
		h.failed(ctx, w, org, "customer lookup", err)
	default:
		writeNotFound(w, "subscription")
	}
}

// failed answers a failed step (writeFailure) and logs it, once, here.
func (h *handler) failed(ctx context.Context, w http.ResponseWriter, org, step string, err error) {
	switch e := writeFailure(ctx, w, err); {
	case e.Code == "canceled":
		h.logger.Debug("lago current usage: "+step+": client gone", "org", org)
	case e.Status == http.StatusServiceUnavailable:
		h.logger.Warn("lago current usage: "+step+"; answered 503", "org", org, "err", err)
	default:
		h.logger.Error("lago current usage: "+step, "org", org, "status", e.Status, "err", err)
	}
}

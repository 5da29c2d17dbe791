package query

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

// The native catalog API: customers, plans, subscriptions and a
// subscription's usage with amounts. Every route is scoped to the API
// key's organization: the organization is never read from the path, the
// query string or the body.
const (
	CustomersRoute         = "/api/v1/customers"
	CustomerRoute          = "/api/v1/customers/{external_id}"
	PlansRoute             = "/api/v1/plans"
	PlanRoute              = "/api/v1/plans/{code}"
	SubscriptionsRoute     = "/api/v1/subscriptions"
	SubscriptionRoute      = "/api/v1/subscriptions/{external_id}"
	SubscriptionUsageRoute = "/api/v1/subscriptions/{external_id}/usage"
)

// CatalogStore is what the catalog handlers need of the catalog;
// *catalogstore.Store satisfies it. Missing objects are
// catalogstore.ErrNotFound, taken keys catalogstore.ErrExists.
type CatalogStore interface {
	PutCustomer(ctx context.Context, orgID string, c schemas.Customer) (schemas.Customer, bool, error)
	GetCustomer(ctx context.Context, orgID, externalID string) (schemas.Customer, error)
	ListCustomers(ctx context.Context, orgID, after string, limit int) ([]schemas.Customer, error)
	DeleteCustomer(ctx context.Context, orgID, externalID string) error

	CreatePlan(ctx context.Context, orgID string, p schemas.Plan) (schemas.Plan, error)
	UpdatePlan(ctx context.Context, orgID string, p schemas.Plan) (schemas.Plan, error)
	GetPlan(ctx context.Context, orgID, code string) (schemas.Plan, error)
	ListPlans(ctx context.Context, orgID, after string, limit int) ([]schemas.Plan, error)
	DeletePlan(ctx context.Context, orgID, code string) error

	CreateSubscription(ctx context.Context, orgID string, sub schemas.Subscription) (schemas.Subscription, error)
	GetSubscription(ctx context.Context, orgID, externalID string) (schemas.Subscription, error)
	ListSubscriptions(ctx context.Context, orgID string, f catalogstore.SubscriptionFilter) ([]schemas.Subscription, error)
	TerminateSubscription(ctx context.Context, orgID, externalID string, at time.Time) (schemas.Subscription, error)
	UpdateSubscription(ctx context.Context, orgID, externalID string, change func(*schemas.Subscription) error) (schemas.Subscription, error)
}

var _ CatalogStore = (*catalogstore.Store)(nil)

// catalogDeps are what the catalog routes are built from.
type catalogDeps struct {
	store   CatalogStore
	meters  MeterStore // a charge's meter must exist
	billing *billing.Service
	logger  *slog.Logger
	timeout time.Duration    // of each request's ClickHouse work; 0: none
	now     func() time.Time // derives statuses, defaults subscription_at, terminates
}

// catalogHandler serves the catalog routes.
type catalogHandler struct{ catalogDeps }

// catalogRoutes returns the native catalog API. Each route is bare: the
// service that mounts it adds authentication and metrics.
func catalogRoutes(d catalogDeps) []httpapi.Route {
	if d.logger == nil {
		d.logger = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	h := &catalogHandler{d}
	return []httpapi.Route{
		{Pattern: "POST " + CustomersRoute, Handler: h.timed(h.putCustomer)},
		{Pattern: "GET " + CustomersRoute, Handler: h.timed(h.listCustomers)},
		{Pattern: CustomersRoute, Handler: methodNotAllowed("GET, POST")},
		{Pattern: "GET " + CustomerRoute, Handler: h.timed(h.getCustomer)},
		{Pattern: "DELETE " + CustomerRoute, Handler: h.timed(h.deleteCustomer)},
		{Pattern: CustomerRoute, Handler: methodNotAllowed("GET, DELETE")},

		{Pattern: "POST " + PlansRoute, Handler: h.timed(h.createPlan)},
		{Pattern: "GET " + PlansRoute, Handler: h.timed(h.listPlans)},
		{Pattern: PlansRoute, Handler: methodNotAllowed("GET, POST")},
		{Pattern: "GET " + PlanRoute, Handler: h.timed(h.getPlan)},
		{Pattern: "PUT " + PlanRoute, Handler: h.timed(h.updatePlan)},
		{Pattern: "DELETE " + PlanRoute, Handler: h.timed(h.deletePlan)},
		{Pattern: PlanRoute, Handler: methodNotAllowed("GET, PUT, DELETE")},

		{Pattern: "POST " + SubscriptionsRoute, Handler: h.timed(h.createSubscription)},
		{Pattern: "GET " + SubscriptionsRoute, Handler: h.timed(h.listSubscriptions)},
		{Pattern: SubscriptionsRoute, Handler: methodNotAllowed("GET, POST")},
		{Pattern: "GET " + SubscriptionRoute, Handler: h.timed(h.getSubscription)},
		{Pattern: "PUT " + SubscriptionRoute, Handler: h.timed(h.updateSubscription)},
		{Pattern: "DELETE " + SubscriptionRoute, Handler: h.timed(h.terminateSubscription)},
		{Pattern: SubscriptionRoute, Handler: methodNotAllowed("GET, PUT, DELETE")},
		{Pattern: "GET " + SubscriptionUsageRoute, Handler: h.timed(h.subscriptionUsage)},
		{Pattern: SubscriptionUsageRoute, Handler: methodNotAllowed("GET")},
	}
}

// timed bounds the ClickHouse work of one request, as usage queries are
// bounded.
func (h *catalogHandler) timed(next http.HandlerFunc) http.HandlerFunc {
	if h.timeout <= 0 {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
		defer cancel()
		next(w, r.WithContext(ctx))
	}
}

// storeFailed answers a failed catalog or meter store call (logged there).
func (h *catalogHandler) storeFailed(w http.ResponseWriter, r *http.Request, action string, err error) {
	writeStorageError(w, r, h.logger, action, err)
}

// writeInvalid answers a request whose body or parameters are invalid,
// every problem naming its field.
func writeInvalid(w http.ResponseWriter, what string, details []*errorDetail) {
	httpapi.WriteErrorDetails(w, http.StatusBadRequest, httpapi.CodeValidation,
		what+" is invalid: "+joinMessages(details), details)
}

// writeCatalogNotFound answers a catalog object that does not exist in
// the caller's organization, saying where to list them.
func writeCatalogNotFound(w http.ResponseWriter, kind, id, listRoute string) {
	httpapi.WriteError(w, http.StatusNotFound, httpapi.CodeNotFound,
		kind+" "+quoteKey(id)+" not found; GET "+listRoute+" lists your "+kind+"s")
}

// isNotFound reports the catalog's not-found error.
func isNotFound(err error) bool { return errors.Is(err, catalogstore.ErrNotFound) }

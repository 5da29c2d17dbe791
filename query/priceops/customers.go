package priceops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

// Customer is one item of PriceOps' customers list.
type Customer struct {
	// CustomerID is the subscription's external_customer_id: the
	// customer_id of the customer's events.
	CustomerID    string         `json:"customer_id"`
	CustomerPlans []CustomerPlan `json:"customer_plans"`
	// ResourceList holds the distinct meter keys the customer's plans
	// charge, sorted; PriceOps usage records name them as resource.
	ResourceList []string `json:"resource_list"`
}

// CustomerPlan is one plan a customer is subscribed to. PriceOps'
// scenario and project are plan metadata ("scenario_name",
// "project_name"), empty when the plan has none.
type CustomerPlan struct {
	ProductName  string `json:"product_name"` // the plan's name
	Status       string `json:"status"`       // pending or active
	ScenarioName string `json:"scenario_name"`
	ProjectName  string `json:"project_name"`
}

// Metadata keys of a plan that PriceOps shows.
const (
	ScenarioMetadataKey = "scenario_name"
	ProjectMetadataKey  = "project_name"
)

// MaxSubscriptions bounds the pending and active subscriptions one
// customers answer holds. PriceOps' route has no pagination, so rather than
// truncate the list silently, a larger organization gets 413 pointing to
// the native paginated GET /api/v1/subscriptions.
const MaxSubscriptions = 10_000

// subscriptionsPage is how many subscriptions one catalog read returns.
const subscriptionsPage = 1000

// errTooMany is listCustomers' answer beyond maxSubscriptions.
var errTooMany = errors.New("too many subscriptions")

func (h *handler) customers(w http.ResponseWriter, r *http.Request) {
	org, ok := sameOrg(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	if h.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.timeout)
		defer cancel()
	}
	list, err := h.listCustomers(ctx, org, h.now())
	switch {
	case errors.Is(err, errTooMany):
		httpapi.WriteError(w, http.StatusRequestEntityTooLarge, httpapi.CodeTooLarge, fmt.Sprintf(
			"the organization has more than %d pending or active subscriptions, more than one customers list may hold; "+
				"page through GET /api/v1/subscriptions instead", h.maxSubscriptions))
	case err != nil:
		h.writeCatalogError(w, r, err)
	default:
		httpapi.WriteJSON(w, http.StatusOK, list)
	}
}

// listCustomers reads every subscription of org page by page and returns
// the customers that have a pending or active one (at now), sorted by
// customer id; never nil.
//
// Terminated subscriptions are left out: PriceOps lists the plans
// customers are subscribed to, and a customer whose subscriptions all
// ended is no longer one. They are still read (the store cannot filter on
// a status derived from the clock), but they do not count against
// maxSubscriptions, so an organization's history cannot make the route
// fail; the request timeout bounds that reading. A subscription whose plan
// was deleted is left out too: it has no name or charges to show.
func (h *handler) listCustomers(ctx context.Context, org string, now time.Time) ([]Customer, error) {
	var current []schemas.Subscription
	plans := map[string]schemas.Plan{}
	filter := catalogstore.SubscriptionFilter{Limit: h.pageSize}
	for {
		page, err := h.catalog.ListSubscriptions(ctx, org, filter)
		if err != nil {
			return nil, fmt.Errorf("list subscriptions: %w", err)
		}
		for _, sub := range page {
			if sub.Status = sub.StatusAt(now); sub.Status == schemas.StatusTerminated {
				continue
			}
			if len(current) == h.maxSubscriptions {
				return nil, errTooMany
			}
			current = append(current, sub)
			if _, seen := plans[sub.PlanCode]; seen {
				continue
			}
			plan, err := h.catalog.GetPlan(ctx, org, sub.PlanCode)
			switch {
			case errors.Is(err, catalogstore.ErrNotFound):
				plan = schemas.Plan{} // remembered as missing
			case err != nil:
				return nil, fmt.Errorf("get plan %s: %w", sub.PlanCode, err)
			}
			plans[sub.PlanCode] = plan
		}
		if len(page) < h.pageSize {
			break
		}
		filter.After = page[len(page)-1].ExternalID
	}
	return buildCustomers(current, plans), nil
}

// buildCustomers groups subscriptions (Status set, none terminated) by
// customer. plans maps plan codes to plans; a zero Plan (Code "") is a
// deleted plan, whose subscriptions are left out. A customer's plans are
// sorted by name (then code and status), each plan and status listed once
// however many subscriptions repeat it.
func buildCustomers(subs []schemas.Subscription, plans map[string]schemas.Plan) []Customer {
	type planLine struct {
		code string
		line CustomerPlan
	}
	lines := map[string][]planLine{}
	resources := map[string]map[string]bool{}
	for _, sub := range subs {
		plan := plans[sub.PlanCode]
		if plan.Code == "" {
			continue
		}
		pl := planLine{code: plan.Code, line: CustomerPlan{
			ProductName: plan.Name, Status: string(sub.Status),
			ScenarioName: plan.Metadata[ScenarioMetadataKey], ProjectName: plan.Metadata[ProjectMetadataKey],
		}}
		id := sub.ExternalCustomerID
		if !slices.Contains(lines[id], pl) {
			lines[id] = append(lines[id], pl)
		}
		if resources[id] == nil {
			resources[id] = map[string]bool{}
		}
		for _, ch := range plan.Charges {
			resources[id][ch.Meter] = true
		}
	}
	out := make([]Customer, 0, len(lines))
	for id, pls := range lines {
		slices.SortFunc(pls, func(a, b planLine) int {
			return cmp.Or(strings.Compare(a.line.ProductName, b.line.ProductName),
				strings.Compare(a.code, b.code), strings.Compare(a.line.Status, b.line.Status))
		})
		c := Customer{CustomerID: id, CustomerPlans: make([]CustomerPlan, len(pls)), ResourceList: []string{}}
		for i, pl := range pls {
			c.CustomerPlans[i] = pl.line
		}
		for key := range resources[id] {
			c.ResourceList = append(c.ResourceList, key)
		}
		slices.Sort(c.ResourceList)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Customer) int { return strings.Compare(a.CustomerID, b.CustomerID) })
	return out
}

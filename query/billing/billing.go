// Package billing answers "what does this subscription owe for its usage
// so far": it loads the subscription, its customer and plan from the
// catalog, finds the billing period, reads each charged meter's usage for
// the subscription's customer exactly as a usage query computes it, and
// prices it with query/rating. It is HTTP-free: Tally's native API and the
// Lago, PriceOps and Measure dialects all call it.
package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tally-oss/tally/query/rating"
	"github.com/tally-oss/tally/query/usage"
	"github.com/tally-oss/tally/schemas"
)

// Catalog is what billing reads of the catalog; *catalogstore.Store
// satisfies it. Missing objects are errors wrapping the store's not-found
// sentinel, given to New.
type Catalog interface {
	GetCustomer(ctx context.Context, orgID, externalID string) (schemas.Customer, error)
	GetPlan(ctx context.Context, orgID, code string) (schemas.Plan, error)
	GetSubscription(ctx context.Context, orgID, externalID string) (schemas.Subscription, error)
}

// Errors callers branch on (404s of every API).
var (
	ErrSubscriptionNotFound = errors.New("subscription not found")
	ErrPlanNotFound         = errors.New("plan not found")
	ErrCustomerNotFound     = errors.New("customer not found")
	// ErrPeriod is a requested period that is not valid.
	ErrPeriod = errors.New("invalid period")
)

// Service computes subscription usage with amounts.
type Service struct {
	catalog  Catalog
	usage    *usage.Service
	notFound error
	maxRows  int // group lines of one Price, over all its charges
	now      func() time.Time
}

// DefaultMaxRows is the row limit when New is given 0: the query
// service's default (query.max-rows).
const DefaultMaxRows = 100_000

// New returns a Service; notFound is the catalog store's not-found error.
// maxRows (query.max-rows; 0 is DefaultMaxRows) bounds the group lines of
// one priced usage over all its charges: the usage reader bounds each
// query, so a plan of n grouped charges would otherwise answer n times
// that.
func New(catalog Catalog, usageSvc *usage.Service, notFound error, maxRows int) *Service {
	if maxRows <= 0 {
		maxRows = DefaultMaxRows
	}
	return &Service{catalog: catalog, usage: usageSvc, notFound: notFound, maxRows: maxRows, now: time.Now}
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Which selects a billing period relative to now.
type Which string

// The periods a request can name.
const (
	Current  Which = "current"
	Previous Which = "previous"
)

// PeriodRequest is a named period (Current by default) or, when From and
// To are set, an explicit range priced as one period (see Price: the fee
// and minimum are prorated only when the range is exactly a billing
// period).
type PeriodRequest struct {
	Which    Which
	From, To time.Time
}

// Subscription is a subscription with what it refers to, as billing sees
// it at one instant.
type Subscription struct {
	Subscription schemas.Subscription // Status set at the time of the request
	Customer     schemas.Customer     // zero but for ExternalID when the customer was deleted
	Plan         schemas.Plan
	Location     *time.Location
	// Schedule gives the subscription's billing periods.
	Schedule rating.Schedule
	// Meters are the live meters the plan charges, by key; a charge whose
	// meter was deleted has none here and zero usage.
	Meters map[string]schemas.Meter
}

// Usage is a subscription's priced usage over one period.
type Usage struct {
	Subscription
	Invoice rating.Invoice
}

// Load returns the subscription, its customer, plan and meters.
func (s *Service) Load(ctx context.Context, orgID, subscriptionID string) (Subscription, error) {
	sub, err := s.catalog.GetSubscription(ctx, orgID, subscriptionID)
	if err != nil {
		return Subscription{}, s.wrap(err, ErrSubscriptionNotFound, "subscription %q", subscriptionID)
	}
	sub.Status = sub.StatusAt(s.now())
	out := Subscription{Subscription: sub, Meters: map[string]schemas.Meter{}}
	if out.Location, err = time.LoadLocation(zoneOr(sub.Timezone)); err != nil {
		return Subscription{}, fmt.Errorf("subscription %q has time zone %q: %w", subscriptionID, sub.Timezone, err)
	}
	if out.Plan, err = s.catalog.GetPlan(ctx, orgID, sub.PlanCode); err != nil {
		return Subscription{}, s.wrap(err, ErrPlanNotFound, "plan %q of subscription %q", sub.PlanCode, subscriptionID)
	}
	if out.Schedule, err = rating.NewSchedule(sub, out.Plan.Interval, out.Location); err != nil {
		return Subscription{}, fmt.Errorf("billing periods of subscription %q: %w", subscriptionID, err)
	}
	out.Customer, err = s.catalog.GetCustomer(ctx, orgID, sub.ExternalCustomerID)
	switch {
	case err != nil && s.notFound != nil && errors.Is(err, s.notFound):
		out.Customer = schemas.Customer{ExternalID: sub.ExternalCustomerID}
	case err != nil:
		return Subscription{}, err
	}
	for _, c := range out.Plan.Charges {
		if _, done := out.Meters[c.Meter]; done {
			continue
		}
		m, err := s.usage.Meter(ctx, orgID, c.Meter)
		switch {
		case errors.Is(err, usage.ErrMeterNotFound):
			continue // deleted since the plan was written: its readings are not served
		case err != nil:
			return Subscription{}, err
		}
		out.Meters[c.Meter] = m
	}
	return out, nil
}

func (s *Service) wrap(err, sentinel error, format string, args ...any) error {
	if s.notFound != nil && errors.Is(err, s.notFound) {
		return fmt.Errorf(format+": %w", append(args, sentinel)...)
	}
	return err
}

func endText(sub schemas.Subscription) string {
	if end, ok := sub.EndAt(); ok {
		return " to " + end.Format(time.RFC3339)
	}
	return ""
}

func zoneOr(tz string) string {
	if tz == "" {
		return "UTC"
	}
	return tz
}

// Period resolves a period request for a loaded subscription.
func (s *Service) Period(sub Subscription, req PeriodRequest) (rating.Period, error) {
	if !req.From.IsZero() || !req.To.IsZero() {
		if req.From.IsZero() || req.To.IsZero() || !req.From.Before(req.To) {
			return rating.Period{}, fmt.Errorf("%w: from must be before to, both given", ErrPeriod)
		}
		// Only the subscription's own life counts: usage before it started
		// or after it ended is another subscription's, or nobody's.
		p := rating.Period{From: req.From, To: req.To}
		if start := sub.Subscription.SubscriptionAt; p.From.Before(start) {
			p.From = start
		}
		if end, ok := sub.Subscription.EndAt(); ok && end.Before(p.To) {
			p.To = end
		}
		if !p.From.Before(p.To) {
			return rating.Period{}, fmt.Errorf("%w: the range does not overlap the subscription, which runs from %s%s",
				ErrPeriod, sub.Subscription.SubscriptionAt.Format(time.RFC3339), endText(sub.Subscription))
		}
		return p, nil
	}
	now := s.now()
	switch req.Which {
	case "", Current:
		return sub.Schedule.At(now), nil
	case Previous:
		p, ok := sub.Schedule.Previous(now)
		if !ok {
			return rating.Period{}, fmt.Errorf("%w: the subscription is in its first billing period; there is no previous one", ErrPeriod)
		}
		return p, nil
	}
	return rating.Period{}, fmt.Errorf("%w: period must be current or previous, got %q", ErrPeriod, req.Which)
}

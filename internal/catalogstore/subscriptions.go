package catalogstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tally-oss/tally/internal/docstore"
	"github.com/tally-oss/tally/schemas"
)

// CreateSubscription stores a new subscription of orgID, or returns
// ErrExists when a live one has its external_id. Its status is not
// stored: callers derive it with StatusAt.
func (s *Store) CreateSubscription(ctx context.Context, orgID string, sub schemas.Subscription) (schemas.Subscription, error) {
	if orgID == "" {
		return schemas.Subscription{}, errNoOrg
	}
	if sub.ExternalID == "" {
		return schemas.Subscription{}, errors.New("subscription external_id is required")
	}
	prev, found, err := s.subscriptions.Current(ctx, orgID, sub.ExternalID)
	if err != nil {
		return schemas.Subscription{}, err
	}
	if found && !prev.Deleted {
		return schemas.Subscription{}, ErrExists
	}
	ch := s.begin(prev)
	sub.Status, sub.CreatedAt = "", ch.at
	if err := s.writeSubscription(ctx, orgID, sub, ch.version, ch); err != nil {
		return schemas.Subscription{}, err
	}
	return sub, nil
}

func (s *Store) writeSubscription(ctx context.Context, orgID string, sub schemas.Subscription, revision uint64, ch change) error {
	if err := s.write(ctx, s.subscriptions, orgID, sub.ExternalID, revision, ch, sub); err != nil {
		return fmt.Errorf("store subscription %s: %w", sub.ExternalID, err)
	}
	return nil
}

// GetSubscription returns the subscription externalID of orgID, terminated
// or not, or ErrNotFound.
func (s *Store) GetSubscription(ctx context.Context, orgID, externalID string) (schemas.Subscription, error) {
	_, sub, err := s.liveSubscription(ctx, orgID, externalID)
	return sub, err
}

// SubscriptionFilter narrows ListSubscriptions. Empty fields do not
// filter; Limit <= 0 means no limit.
type SubscriptionFilter struct {
	CustomerID string // external_customer_id
	PlanCode   string
	After      string // list external_ids greater than this
	Limit      int
}

// ListSubscriptions returns the subscriptions of orgID that match f,
// terminated ones included, sorted by external_id. The filters are applied
// in SQL to the current version of each subscription, so pages are full.
// The terminations of the listed subscriptions are read in one more query
// (several for a list of many thousand ids).
func (s *Store) ListSubscriptions(ctx context.Context, orgID string, f SubscriptionFilter) ([]schemas.Subscription, error) {
	if orgID == "" {
		return nil, errNoOrg
	}
	// Both are top-level string properties of schemas.Subscription, which
	// has no nested object that could hold a property of the same name.
	var matches []docstore.Match
	if f.CustomerID != "" {
		matches = append(matches, docstore.Match{Property: "external_customer_id", Value: f.CustomerID})
	}
	if f.PlanCode != "" {
		matches = append(matches, docstore.Match{Property: "plan_code", Value: f.PlanCode})
	}
	rows, err := s.subscriptions.List(ctx, orgID, f.After, f.Limit, matches...)
	if err != nil {
		return nil, err
	}
	subs, err := decodeAll[schemas.Subscription](rows)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.Key
	}
	terms, err := s.terminations(ctx, orgID, ids)
	if err != nil {
		return nil, err
	}
	for i, r := range rows {
		overlay(&subs[i], r, terms)
	}
	return subs, nil
}

// TerminateSubscription terminates the subscription at at and returns it.
// The termination is inserted into its own append-only table (see
// terminations.go), which no later write of the document can undo; the
// document itself is not rewritten, so a termination cannot lose a
// concurrent update either. A subscription already terminated is returned
// unchanged, so a retried termination keeps the first time; terminations
// racing each other both insert, and every read (this one's answer too)
// shows the earliest. ErrNotFound when orgID has no such subscription.
func (s *Store) TerminateSubscription(ctx context.Context, orgID, externalID string, at time.Time) (schemas.Subscription, error) {
	r, sub, err := s.liveSubscription(ctx, orgID, externalID)
	if err != nil {
		return schemas.Subscription{}, err
	}
	if sub.TerminatedAt != nil {
		return sub, nil
	}
	if err := s.insertTermination(ctx, orgID, externalID, r.Revision, at.UTC()); err != nil {
		return schemas.Subscription{}, err
	}
	terms, err := s.terminations(ctx, orgID, []string{externalID})
	if err != nil {
		return schemas.Subscription{}, err
	}
	overlay(&sub, r, terms)
	if sub.TerminatedAt == nil {
		return schemas.Subscription{}, fmt.Errorf("termination of subscription %s was stored but is not read back", externalID)
	}
	return sub, nil
}

// UpdateSubscription applies change to the live subscription externalID of
// orgID and stores the result, keeping its revision and creation time. An
// error from change is returned as it is and nothing is written.
// ErrNotFound when orgID has no such subscription.
//
// change sees the subscription with its termination overlaid, and cannot
// terminate it or undo a termination: TerminatedAt is restored after it.
// A termination that lands between this read and this write is not in
// the document written, but reads overlay it from its table, so the
// subscription stays terminated.
func (s *Store) UpdateSubscription(ctx context.Context, orgID, externalID string, change func(*schemas.Subscription) error) (schemas.Subscription, error) {
	r, sub, err := s.liveSubscription(ctx, orgID, externalID)
	if err != nil {
		return schemas.Subscription{}, err
	}
	var terminatedAt *time.Time
	if sub.TerminatedAt != nil {
		at := *sub.TerminatedAt
		terminatedAt = &at
	}
	if err := change(&sub); err != nil {
		return schemas.Subscription{}, err
	}
	sub.ExternalID = externalID // the key never changes
	sub.TerminatedAt = terminatedAt
	if err := s.writeSubscription(ctx, orgID, sub, r.Revision, s.begin(r)); err != nil {
		return schemas.Subscription{}, err
	}
	return sub, nil
}

package catalogstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/tally-oss/tally/internal/docstore"
	"github.com/tally-oss/tally/schemas"
)

// CreatePlan stores a new plan of orgID and returns it with its revision
// (the version that created it), times and charge ids. It returns
// ErrExists when a live plan has the code. A plan deleted and created
// again gets a new revision.
func (s *Store) CreatePlan(ctx context.Context, orgID string, p schemas.Plan) (schemas.Plan, error) {
	if orgID == "" {
		return schemas.Plan{}, errNoOrg
	}
	if p.Code == "" {
		return schemas.Plan{}, errors.New("plan code is required")
	}
	prev, found, err := s.plans.Current(ctx, orgID, p.Code)
	if err != nil {
		return schemas.Plan{}, err
	}
	if found && !prev.Deleted {
		return schemas.Plan{}, ErrExists
	}
	if p.Charges, err = assignChargeIDs(nil, p.Charges); err != nil {
		return schemas.Plan{}, fmt.Errorf("plan %s: %w", p.Code, err)
	}
	ch := s.begin(prev)
	p.Revision, p.CreatedAt, p.UpdatedAt = ch.version, ch.at, ch.at
	if err := s.writePlan(ctx, orgID, p, ch); err != nil {
		return schemas.Plan{}, err
	}
	return p, nil
}

// UpdatePlan replaces the live plan p.Code of orgID, or returns
// ErrNotFound. It keeps the plan's revision and CreatedAt, and the ids of
// charges it can match to the previous version (see assignChargeIDs).
func (s *Store) UpdatePlan(ctx context.Context, orgID string, p schemas.Plan) (schemas.Plan, error) {
	prevRow, err := live(ctx, s.plans, orgID, p.Code)
	if err != nil {
		return schemas.Plan{}, err
	}
	prev, err := decode[schemas.Plan](prevRow)
	if err != nil {
		return schemas.Plan{}, err
	}
	if p.Charges, err = assignChargeIDs(prev.Charges, p.Charges); err != nil {
		return schemas.Plan{}, fmt.Errorf("plan %s: %w", p.Code, err)
	}
	ch := s.begin(prevRow)
	p.Revision, p.CreatedAt, p.UpdatedAt = prevRow.Revision, prev.CreatedAt, ch.at
	if err := s.writePlan(ctx, orgID, p, ch); err != nil {
		return schemas.Plan{}, err
	}
	return p, nil
}

func (s *Store) writePlan(ctx context.Context, orgID string, p schemas.Plan, ch change) error {
	if err := s.write(ctx, s.plans, orgID, p.Code, p.Revision, ch, p); err != nil {
		return fmt.Errorf("store plan %s: %w", p.Code, err)
	}
	return nil
}

// GetPlan returns the live plan code of orgID, or ErrNotFound.
func (s *Store) GetPlan(ctx context.Context, orgID, code string) (schemas.Plan, error) {
	r, err := live(ctx, s.plans, orgID, code)
	if err != nil {
		return schemas.Plan{}, err
	}
	return decodePlan(r)
}

// ListPlans returns the live plans of orgID whose code is greater than
// after, sorted by code, at most limit of them (limit <= 0: all).
func (s *Store) ListPlans(ctx context.Context, orgID, after string, limit int) ([]schemas.Plan, error) {
	if orgID == "" {
		return nil, errNoOrg
	}
	rows, err := s.plans.List(ctx, orgID, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]schemas.Plan, 0, len(rows))
	for _, r := range rows {
		p, err := decodePlan(r)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// decodePlan reads a stored plan; its revision is the row's.
func decodePlan(r docstore.Row) (schemas.Plan, error) {
	p, err := decode[schemas.Plan](r)
	p.Revision = r.Revision
	return p, err
}

// DeletePlan deletes the live plan code of orgID, or returns ErrNotFound.
// Subscriptions on it are the caller's concern.
func (s *Store) DeletePlan(ctx context.Context, orgID, code string) error {
	return s.remove(ctx, s.plans, orgID, code)
}

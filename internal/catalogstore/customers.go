package catalogstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/tally-oss/tally/schemas"
)

// PutCustomer creates the customer c.ExternalID of orgID, or replaces the
// live one; created reports which. A replacement keeps CreatedAt; both set
// UpdatedAt. A customer deleted and put again is created anew.
func (s *Store) PutCustomer(ctx context.Context, orgID string, c schemas.Customer) (schemas.Customer, bool, error) {
	if orgID == "" {
		return schemas.Customer{}, false, errNoOrg
	}
	if c.ExternalID == "" {
		return schemas.Customer{}, false, errors.New("customer external_id is required")
	}
	prev, found, err := s.customers.Current(ctx, orgID, c.ExternalID)
	if err != nil {
		return schemas.Customer{}, false, err
	}
	ch := s.begin(prev)
	created := !found || prev.Deleted
	revision := ch.version
	c.CreatedAt = ch.at
	if !created {
		old, err := decode[schemas.Customer](prev)
		if err != nil {
			return schemas.Customer{}, false, err
		}
		revision, c.CreatedAt = prev.Revision, old.CreatedAt
	}
	c.UpdatedAt = ch.at
	if err := s.write(ctx, s.customers, orgID, c.ExternalID, revision, ch, c); err != nil {
		return schemas.Customer{}, false, fmt.Errorf("store customer %s: %w", c.ExternalID, err)
	}
	return c, created, nil
}

// GetCustomer returns the live customer externalID of orgID, or
// ErrNotFound.
func (s *Store) GetCustomer(ctx context.Context, orgID, externalID string) (schemas.Customer, error) {
	r, err := live(ctx, s.customers, orgID, externalID)
	if err != nil {
		return schemas.Customer{}, err
	}
	return decode[schemas.Customer](r)
}

// ListCustomers returns the live customers of orgID whose external_id is
// greater than after, sorted by external_id, at most limit of them (limit
// <= 0: all).
func (s *Store) ListCustomers(ctx context.Context, orgID, after string, limit int) ([]schemas.Customer, error) {
	if orgID == "" {
		return nil, errNoOrg
	}
	rows, err := s.customers.List(ctx, orgID, after, limit)
	if err != nil {
		return nil, err
	}
	return decodeAll[schemas.Customer](rows)
}

// DeleteCustomer deletes the live customer externalID of orgID, or returns
// ErrNotFound. Its events and usage stay.
func (s *Store) DeleteCustomer(ctx context.Context, orgID, externalID string) error {
	return s.remove(ctx, s.customers, orgID, externalID)
}

// Package usage computes metered usage: the HTTP-free layer under every
// API that reports usage (Tally's own usage queries, subscription usage
// with amounts, and the Lago, PriceOps and Measure dialects).
//
// A Query names one meter revision of one organization, a half-open time
// range, optional windows in an IANA time zone, groups and filters; a
// Reader folds the meter's readings in ClickHouse into rows. Usage is
// aggregated from the raw, deduplicated readings at query time, so sums
// are exact decimals, averages are never averages of averages, and
// windows follow the time zone across DST changes.
package usage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tally-oss/tally/schemas"
)

// Query is one validated usage request.
type Query struct {
	OrgID       string // from the API key, never from the request
	MeterKey    string
	Revision    uint64
	Aggregation schemas.Aggregation
	From, To    time.Time // half-open [From, To)
	WindowSize  WindowSize
	Location    *time.Location
	CustomerIDs []string
	GroupBy     []string      // in request order: customer_id or keys of the meter's group_by
	Filters     []GroupFilter // sorted by key
}

// GroupFilter keeps the rows whose group key has one of the values.
type GroupFilter struct {
	Key    string
	Values []string
}

// ForMeter returns a query of meter's current revision over [from, to),
// one window, in UTC.
func ForMeter(orgID string, meter schemas.Meter, from, to time.Time) Query {
	return Query{OrgID: orgID, MeterKey: meter.Key, Revision: meter.Revision, Aggregation: meter.Aggregation,
		From: from, To: to, Location: time.UTC}
}

// MeterGetter returns the live meter key of an organization, or an error
// wrapping ErrMeterNotFound.
type MeterGetter interface {
	Get(ctx context.Context, orgID, key string) (schemas.Meter, error)
}

// ErrMeterNotFound is returned for a meter that does not exist (or was
// deleted); the meter store's own not-found error is wrapped into it.
var ErrMeterNotFound = errors.New("meter not found")

// Service answers usage questions for the handlers and the billing code:
// the meter definitions and the reader of their readings.
type Service struct {
	meters   MeterGetter
	reader   Reader
	notFound error // the meter store's not-found sentinel
}

// NewService returns a Service. notFound is the error the meter store
// returns for a missing meter, reported as ErrMeterNotFound.
func NewService(meters MeterGetter, reader Reader, notFound error) *Service {
	return &Service{meters: meters, reader: reader, notFound: notFound}
}

// Meter returns the live meter key of orgID.
func (s *Service) Meter(ctx context.Context, orgID, key string) (schemas.Meter, error) {
	m, err := s.meters.Get(ctx, orgID, key)
	if err != nil && s.notFound != nil && errors.Is(err, s.notFound) {
		return schemas.Meter{}, fmt.Errorf("meter %q: %w", key, ErrMeterNotFound)
	}
	return m, err
}

// Read runs a usage query.
func (s *Service) Read(ctx context.Context, q Query) ([]Row, error) {
	return s.reader.Read(ctx, q)
}

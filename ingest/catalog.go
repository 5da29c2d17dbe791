package ingest

import (
	"context"
	"errors"

	"github.com/tally-oss/tally/schemas"
)

// Catalog is what the compatible write routes look up: a PriceOps usage
// record names a meter, and a Lago event may name a subscription instead
// of a customer. Tally's own events route needs neither, so ingest keeps
// accepting native events while ClickHouse (where the catalog lives) is
// down; the lookups then answer 503.
type Catalog interface {
	// Meter returns the live meter key of orgID, or an error wrapping
	// ErrNotFound.
	Meter(ctx context.Context, orgID, key string) (schemas.Meter, error)
	// Subscription returns the subscription externalID of orgID, or an
	// error wrapping ErrNotFound.
	Subscription(ctx context.Context, orgID, externalID string) (schemas.Subscription, error)
}

// ErrNotFound is what a Catalog returns for a meter or subscription that
// does not exist.
var ErrNotFound = errors.New("not found in the catalog")

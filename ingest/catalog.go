package ingest

import (
	"context"
	"errors"

	"github.com/tally-oss/tally/schemas"
)

// Catalog is what the compatible write routes look up: a PriceOps usage
// record names meters, and a Lago event may name a subscription instead
// of a customer. Tally's own events route needs neither, so ingest keeps
// accepting native events while ClickHouse (where the catalog lives) is
// down; the lookups then answer 503.
type Catalog interface {
	// Meters returns the live meters of orgID: a usage record's resources
	// are their keys, and the other meters of a resource's event type
	// must not meter its items.
	Meters(ctx context.Context, orgID string) ([]schemas.Meter, error)
	// Subscription returns the subscription externalID of orgID, or an
	// error wrapping ErrNotFound.
	Subscription(ctx context.Context, orgID, externalID string) (schemas.Subscription, error)
}

// ErrNotFound is what a Catalog returns for a subscription that does not
// exist.
var ErrNotFound = errors.New("not found in the catalog")

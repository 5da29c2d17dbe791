package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/ingest"
	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/schemas"
)

// ingestCatalog gives ingest's compatible routes the meters and
// subscriptions they look up, from the stores in ClickHouse.
type ingestCatalog struct {
	meters  *meterstore.Store
	catalog *catalogstore.Store
}

var _ ingest.Catalog = ingestCatalog{}

func newIngestCatalog(conn driver.Conn) ingestCatalog {
	return ingestCatalog{meters: meterstore.New(conn), catalog: catalogstore.New(conn)}
}

// Meters returns the live meters of orgID. A stored definition that no
// longer validates (meterstore reports its *schemas.FieldError beside the
// others) is left out, as the aggregator leaves it out: it meters
// nothing. Only a failed read is an error.
func (c ingestCatalog) Meters(ctx context.Context, orgID string) ([]schemas.Meter, error) {
	ms, err := c.meters.List(ctx, orgID)
	var invalid *schemas.FieldError
	if err != nil && !errors.As(err, &invalid) {
		return nil, err
	}
	return ms, nil
}

func (c ingestCatalog) Subscription(ctx context.Context, orgID, externalID string) (schemas.Subscription, error) {
	s, err := c.catalog.GetSubscription(ctx, orgID, externalID)
	if errors.Is(err, catalogstore.ErrNotFound) {
		return schemas.Subscription{}, fmt.Errorf("subscription %q: %w", externalID, ingest.ErrNotFound)
	}
	return s, err
}

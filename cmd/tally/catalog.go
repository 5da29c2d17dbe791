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

func (c ingestCatalog) Meter(ctx context.Context, orgID, key string) (schemas.Meter, error) {
	m, err := c.meters.Get(ctx, orgID, key)
	if errors.Is(err, meterstore.ErrNotFound) {
		return schemas.Meter{}, fmt.Errorf("meter %q: %w", key, ingest.ErrNotFound)
	}
	return m, err
}

func (c ingestCatalog) Subscription(ctx context.Context, orgID, externalID string) (schemas.Subscription, error) {
	s, err := c.catalog.GetSubscription(ctx, orgID, externalID)
	if errors.Is(err, catalogstore.ErrNotFound) {
		return schemas.Subscription{}, fmt.Errorf("subscription %q: %w", externalID, ingest.ErrNotFound)
	}
	return s, err
}

package testenv

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/internal/chclient"
)

// Reading is one row of the readings table, for tests of the read side
// that need usage without running the pipeline.
type Reading struct {
	Org, Meter string
	Revision   uint64
	Customer   string
	EventID    string
	Time       time.Time
	Value      string // decimal text; "" is 0
	Distinct   string
	Groups     map[string]string
}

// MigratedDatabase creates a test database with Tally's schema and
// returns a connection bound to it.
func MigratedDatabase(t testing.TB) driver.Conn {
	t.Helper()
	addr, database := NewMigratedDatabase(t)
	return Conn(t, addr, database)
}

// NewMigratedDatabase is NewDatabase with Tally's schema applied, for
// tests that need the address and name themselves (to open their own
// clients or put a proxy in front) rather than one connection.
func NewMigratedDatabase(t testing.TB) (addr, database string) {
	t.Helper()
	addr, database = NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := chclient.Migrate(ctx, Conn(t, addr, "default"), database); err != nil {
		t.Fatalf("migrate %s: %v", database, err)
	}
	return addr, database
}

// InsertReadings writes readings in one insert, exactly as the aggregator
// does: time truncated to the second, time_ns exact, the value a
// Decimal(38, 12), group keys sorted and group values aligned with them.
// Calling it twice with the same readings is what a retried insert does.
func InsertReadings(t testing.TB, conn driver.Conn, rows ...Reading) {
	t.Helper()
	ctx := context.Background()
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO readings (org_id, meter_key, meter_revision, customer_id, event_id,
		time, time_ns, value, distinct_value, group_keys, group_values, ingested_at)`)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		value := decimal.Zero
		if r.Value != "" {
			value = decimal.RequireFromString(r.Value)
		}
		keys := slices.Sorted(maps.Keys(r.Groups))
		values := make([]string, len(keys))
		for i, k := range keys {
			values[i] = r.Groups[k]
		}
		if keys == nil {
			keys, values = []string{}, []string{}
		}
		if err := batch.Append(r.Org, r.Meter, r.Revision, r.Customer, r.EventID,
			r.Time.UTC().Truncate(time.Second), r.Time.UnixNano(), value, r.Distinct,
			keys, values, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}

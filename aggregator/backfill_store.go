package aggregator

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/schemas"
)

// BackfillSource is what the backfiller reads and records besides the
// rows it writes through Store. The backfiller retries each call itself,
// around the whole backfill of a revision.
type BackfillSource interface {
	// CompletedBackfills returns the meter revisions whose backfill
	// completed, with the time of the last completion.
	CompletedBackfills(ctx context.Context) (map[BackfillKey]time.Time, error)
	// InvalidMeterDeadLetters returns, for each meter (by organization and
	// key, MeterKey of the BackfillKey; Revision 0) that has dead letters
	// with reason meter_invalid, or unwritable with its meter key (a
	// reading that was parked while its event was stored), the time of
	// the last one.
	InvalidMeterDeadLetters(ctx context.Context) (map[BackfillKey]time.Time, error)
	// ScanEvents calls fn for every stored event of the organization and
	// of one of the types, with its Kafka position, until fn returns an
	// error.
	ScanEvents(ctx context.Context, orgID string, types []string, fn func(schemas.Record, Position) error) error
	// MarkBackfilled records that the revision's backfill completed.
	MarkBackfilled(ctx context.Context, k BackfillKey, events int) error
}

// BackfillKey is a meter revision of an organization.
type BackfillKey struct {
	OrgID, MeterKey string
	Revision        uint64
}

var _ BackfillSource = (*clickhouseStore)(nil)

func (s *clickhouseStore) CompletedBackfills(ctx context.Context) (map[BackfillKey]time.Time, error) {
	rows, err := s.conn.Query(ctx, `SELECT org_id, meter_key, meter_revision, max(completed_at) FROM meter_backfills
		GROUP BY org_id, meter_key, meter_revision`)
	if err != nil {
		return nil, fmt.Errorf("read meter_backfills: %w", err)
	}
	defer rows.Close()
	out := map[BackfillKey]time.Time{}
	for rows.Next() {
		var k BackfillKey
		var at time.Time
		if err := rows.Scan(&k.OrgID, &k.MeterKey, &k.Revision, &at); err != nil {
			return nil, fmt.Errorf("read meter_backfills: %w", err)
		}
		out[k] = at
	}
	return out, rows.Err()
}

// InvalidMeterDeadLetters scans the dead letters once per aggregator start
// (reason is not in the sort key); they are few unless a meter was broken
// for long.
func (s *clickhouseStore) InvalidMeterDeadLetters(ctx context.Context) (map[BackfillKey]time.Time, error) {
	rows, err := s.conn.Query(ctx, `SELECT org_id, meter_key, max(dead_lettered_at) FROM dead_letters
		WHERE reason = ? OR (reason = ? AND meter_key != '') GROUP BY org_id, meter_key`,
		schemas.ReasonMeterInvalid, schemas.ReasonUnwritable)
	if err != nil {
		return nil, fmt.Errorf("read meter_invalid dead letters: %w", err)
	}
	defer rows.Close()
	out := map[BackfillKey]time.Time{}
	for rows.Next() {
		var k BackfillKey
		var at time.Time
		if err := rows.Scan(&k.OrgID, &k.MeterKey, &at); err != nil {
			return nil, fmt.Errorf("read meter_invalid dead letters: %w", err)
		}
		out[k] = at
	}
	return out, rows.Err()
}

// ScanEvents reads the events table, which holds only first versions, so
// duplicates are excluded; no FINAL, because unmerged copies of an event
// produce the same rows, which fold. The types are one statement's IN list
// (one pass over the organization's events), bound by the client, which
// ClickHouse 18.16 runs as well as 25.
func (s *clickhouseStore) ScanEvents(ctx context.Context, orgID string, types []string, fn func(schemas.Record, Position) error) error {
	if len(types) == 0 {
		return nil
	}
	query, args := scanEventsQuery(orgID, types)
	rows, err := s.conn.Query(s.consistent(ctx), query, args...) // sees every partition's inserts
	if err != nil {
		return fmt.Errorf("read events for backfill: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var rec schemas.Record
		var timeNs int64
		var props string
		var pos Position
		if err := rows.Scan(&rec.Event.Type, &rec.Event.CustomerID, &rec.Event.ID, &rec.Event.Source, &timeNs, &props,
			&rec.IngestedAt, &pos.Partition, &pos.Offset); err != nil {
			return fmt.Errorf("read events for backfill: %w", err)
		}
		rec.OrgID = orgID
		rec.Event.Time = time.Unix(0, timeNs).UTC()
		rec.Event.Properties = json.RawMessage(props)
		rec.IngestedAt = rec.IngestedAt.UTC()
		if err := fn(rec, pos); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read events for backfill: %w", err)
	}
	return nil
}

// scanEventsQuery is ScanEvents' statement: one placeholder per type.
func scanEventsQuery(orgID string, types []string) (string, []any) {
	args := make([]any, 0, 1+len(types))
	args = append(args, orgID)
	for _, t := range types {
		args = append(args, t)
	}
	return `SELECT type, customer_id, id, source, time_ns, properties, ingested_at, kafka_partition, kafka_offset
		FROM events WHERE org_id = ? AND type IN (?` + strings.Repeat(", ?", len(types)-1) + `)`, args
}

func (s *clickhouseStore) MarkBackfilled(ctx context.Context, k BackfillKey, events int) error {
	err := s.send(ctx, "INSERT INTO meter_backfills (org_id, meter_key, meter_revision, events, completed_at)", func(b driver.Batch) error {
		return b.Append(k.OrgID, k.MeterKey, k.Revision, uint64(events), time.Now().UTC().Truncate(time.Second))
	})
	if err != nil {
		return fmt.Errorf("record backfill: %w", err)
	}
	return nil
}

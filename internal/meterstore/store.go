// Package meterstore keeps meter definitions in ClickHouse, the one store
// that the query service (which serves the meters API) and the aggregator
// (which evaluates meters for every batch) both already depend on.
//
// Every change appends a row with a higher version to the meters table;
// the current state of a key is its highest version, read with argMax so
// that it never depends on background merges. A meter deleted and created
// again under the same key gets a new revision, and readings carry the
// revision they were computed for, so usage of an old definition never
// mixes into the new one.
package meterstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/schemas"
)

// Errors callers branch on.
var (
	ErrNotFound = errors.New("meter not found")
	ErrExists   = errors.New("meter already exists")
)

// errNoOrg guards organization isolation: current treats an empty
// organization as "all of them", so a caller that lost the organization
// must fail rather than read (or overwrite) another organization's meter.
var errNoOrg = errors.New("meterstore: organization id is required")

// Store reads and writes meters. The connection must be bound to Tally's
// database.
type Store struct {
	conn driver.Conn
	now  func() time.Time
}

// New returns a Store on conn.
func New(conn driver.Conn) *Store {
	return &Store{conn: conn, now: time.Now}
}

type row struct {
	orgID      string
	key        string
	revision   uint64
	definition string
	deleted    bool
	version    uint64
}

// current returns the latest row of each key of orgID (all organizations
// when orgID is ""), deleted ones included.
func (s *Store) current(ctx context.Context, orgID, key string) ([]row, error) {
	query := `SELECT org_id, key, argMax(revision, version), argMax(definition, version),
	                 argMax(deleted, version), max(version)
	          FROM meters`
	var conds []string
	var args []any
	if orgID != "" {
		conds, args = append(conds, "org_id = ?"), append(args, orgID)
	}
	if key != "" {
		conds, args = append(conds, "key = ?"), append(args, key)
	}
	if len(conds) > 0 {
		query += " WHERE " + strings.Join(conds, " AND ")
	}
	query += " GROUP BY org_id, key ORDER BY org_id, key"
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read meters: %w", err)
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		var r row
		var deleted uint8
		if err := rows.Scan(&r.orgID, &r.key, &r.revision, &r.definition, &deleted, &r.version); err != nil {
			return nil, fmt.Errorf("read meters: %w", err)
		}
		r.deleted = deleted == 1
		out = append(out, r)
	}
	return out, rows.Err()
}

func decode(r row) (schemas.Meter, error) {
	m, err := schemas.ParseMeter([]byte(r.definition))
	if err != nil {
		return schemas.Meter{}, fmt.Errorf("stored meter %s/%s is invalid: %w", r.orgID, r.key, err)
	}
	m.Revision = r.revision
	return m, nil
}

// Get returns the live meter key of orgID, or ErrNotFound.
func (s *Store) Get(ctx context.Context, orgID, key string) (schemas.Meter, error) {
	if orgID == "" {
		return schemas.Meter{}, errNoOrg
	}
	if key == "" {
		return schemas.Meter{}, ErrNotFound // "" would select every key
	}
	rows, err := s.current(ctx, orgID, key)
	if err != nil {
		return schemas.Meter{}, err
	}
	if len(rows) == 0 || rows[0].deleted {
		return schemas.Meter{}, ErrNotFound
	}
	return decode(rows[0])
}

// List returns the live meters of orgID sorted by key.
func (s *Store) List(ctx context.Context, orgID string) ([]schemas.Meter, error) {
	if orgID == "" {
		return nil, errNoOrg
	}
	all, err := s.listLive(ctx, orgID)
	if err != nil {
		return nil, err
	}
	return all[orgID], nil
}

// ListAll returns the live meters of every organization, by organization.
// The aggregator calls it for every batch: the table holds one row per
// change, so it stays small.
func (s *Store) ListAll(ctx context.Context) (map[string][]schemas.Meter, error) {
	return s.listLive(ctx, "")
}

func (s *Store) listLive(ctx context.Context, orgID string) (map[string][]schemas.Meter, error) {
	rows, err := s.current(ctx, orgID, "")
	if err != nil {
		return nil, err
	}
	out := map[string][]schemas.Meter{}
	var errs []error
	for _, r := range rows {
		if r.deleted {
			continue
		}
		m, err := decode(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[r.orgID] = append(out[r.orgID], m)
	}
	return out, errors.Join(errs...)
}

// Create stores a new meter and returns it with its revision and creation
// time. It returns ErrExists when a live meter has the key. Two concurrent
// creates of one key on different query replicas can both succeed; the
// later version wins and readings of the other revision are ignored.
func (s *Store) Create(ctx context.Context, orgID string, m schemas.Meter) (schemas.Meter, error) {
	if orgID == "" {
		return schemas.Meter{}, errNoOrg
	}
	rows, err := s.current(ctx, orgID, m.Key)
	if err != nil {
		return schemas.Meter{}, err
	}
	var prev *row
	if len(rows) > 0 {
		if !rows[0].deleted {
			return schemas.Meter{}, ErrExists
		}
		prev = &rows[0]
	}
	m.Revision = 0 // assigned by the store, whatever the caller sent
	return s.write(ctx, orgID, m, prev)
}

// Put creates the meter, or replaces the live one of the same key. A
// replacement with the same definition keeps its revision (and so its
// usage); a changed definition starts a new revision. It is how meters
// are loaded from a file at start.
func (s *Store) Put(ctx context.Context, orgID string, m schemas.Meter) (schemas.Meter, bool, error) {
	if orgID == "" {
		return schemas.Meter{}, false, errNoOrg
	}
	rows, err := s.current(ctx, orgID, m.Key)
	if err != nil {
		return schemas.Meter{}, false, err
	}
	if len(rows) == 0 {
		m.Revision = 0
		out, err := s.write(ctx, orgID, m, nil)
		return out, true, err
	}
	prev := rows[0]
	if !prev.deleted {
		if old, err := decode(prev); err == nil && schemas.SameDefinition(old, m) {
			if old.Name == m.Name && old.Description == m.Description {
				return old, false, nil
			}
			// Only the name or description changed: the events metered
			// are the same, so the meter keeps its revision and its usage.
			m.Revision, m.CreatedAt = old.Revision, old.CreatedAt
			out, err := s.write(ctx, orgID, m, &prev)
			return out, true, err
		}
	}
	m.Revision = 0
	out, err := s.write(ctx, orgID, m, &prev)
	return out, true, err
}

// write appends a live row for m. A zero m.Revision starts a new revision;
// a set one is kept (a rename of an unchanged definition).
func (s *Store) write(ctx context.Context, orgID string, m schemas.Meter, prev *row) (schemas.Meter, error) {
	now := s.now().UTC()
	version := uint64(now.UnixNano())
	if prev != nil && prev.version >= version {
		version = prev.version + 1
	}
	if m.Revision == 0 {
		// The revision is the version that created it: unique per key and
		// increasing, so a recreated meter never reuses an old revision.
		m.Revision = version
		m.CreatedAt = now.Truncate(time.Millisecond)
	}
	def, err := marshalMeter(m)
	if err != nil {
		return schemas.Meter{}, err
	}
	if err := s.insert(ctx, row{orgID: orgID, key: m.Key, revision: m.Revision, definition: def, version: version}, now); err != nil {
		return schemas.Meter{}, fmt.Errorf("store meter %s: %w", m.Key, err)
	}
	return m, nil
}

// Delete removes the live meter key of orgID, or returns ErrNotFound. Its
// readings stay in ClickHouse but are no longer served.
func (s *Store) Delete(ctx context.Context, orgID, key string) error {
	if orgID == "" {
		return errNoOrg
	}
	if key == "" {
		return ErrNotFound // "" would select every key
	}
	rows, err := s.current(ctx, orgID, key)
	if err != nil {
		return err
	}
	if len(rows) == 0 || rows[0].deleted {
		return ErrNotFound
	}
	now := s.now().UTC()
	version := max(uint64(now.UnixNano()), rows[0].version+1)
	tombstone := rows[0]
	tombstone.deleted, tombstone.version = true, version
	if err := s.insert(ctx, tombstone, now); err != nil {
		return fmt.Errorf("delete meter %s: %w", key, err)
	}
	return nil
}

func marshalMeter(m schemas.Meter) (string, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode meter %s: %w", m.Key, err)
	}
	return string(b), nil
}

// insert appends one row through a batch: on ClickHouse 18.16 an INSERT
// ... VALUES sent with Exec never returns.
func (s *Store) insert(ctx context.Context, r row, updatedAt time.Time) error {
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO meters (org_id, key, revision, definition, deleted, version, updated_at)")
	if err != nil {
		return err
	}
	var deleted uint8
	if r.deleted {
		deleted = 1
	}
	if err := batch.Append(r.orgID, r.key, r.revision, r.definition, deleted, r.version, updatedAt); err != nil {
		_ = batch.Abort()
		return err
	}
	return batch.Send()
}

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
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/docstore"
	"github.com/tally-oss/tally/schemas"
)

// Errors callers branch on.
var (
	ErrNotFound = errors.New("meter not found")
	ErrExists   = errors.New("meter already exists")
)

// errNoOrg guards organization isolation: a caller that lost the
// organization must fail rather than read (or overwrite) another
// organization's meter.
var errNoOrg = fmt.Errorf("meterstore: %w", docstore.ErrNoOrg)

// metersTable holds one row per change of a meter (see docstore).
const metersTable = "meters"

// Store reads and writes meters. The connection must be bound to Tally's
// database.
type Store struct {
	table *docstore.Table
	now   func() time.Time
}

// New returns a Store on conn.
func New(conn driver.Conn) *Store {
	return &Store{table: docstore.New(conn, metersTable), now: time.Now}
}

// current returns the current row of key in orgID, deleted or not.
func (s *Store) current(ctx context.Context, orgID, key string) (docstore.Row, bool, error) {
	if orgID == "" {
		return docstore.Row{}, false, errNoOrg
	}
	return s.table.Current(ctx, orgID, key)
}

func decode(r docstore.Row) (schemas.Meter, error) {
	m, err := schemas.ParseStoredMeter([]byte(r.Definition))
	if err != nil {
		return schemas.Meter{}, fmt.Errorf("stored meter %s/%s is invalid: %w", r.OrgID, r.Key, err)
	}
	m.Revision = r.Revision
	return m, nil
}

// Get returns the live meter key of orgID, or ErrNotFound.
func (s *Store) Get(ctx context.Context, orgID, key string) (schemas.Meter, error) {
	if orgID == "" {
		return schemas.Meter{}, errNoOrg
	}
	if key == "" {
		return schemas.Meter{}, ErrNotFound
	}
	r, found, err := s.current(ctx, orgID, key)
	if err != nil {
		return schemas.Meter{}, err
	}
	if !found || r.Deleted {
		return schemas.Meter{}, ErrNotFound
	}
	return decode(r)
}

// List returns the live meters of orgID sorted by key.
func (s *Store) List(ctx context.Context, orgID string) ([]schemas.Meter, error) {
	if orgID == "" {
		return nil, errNoOrg
	}
	rows, err := s.table.List(ctx, orgID, "", 0)
	if err != nil {
		return nil, err
	}
	byOrg, err := decodeLive(rows)
	return byOrg[orgID], err
}

// ListAll returns the live meters of every organization, by organization.
// The aggregator calls it for every batch: the table holds one row per
// change, so it stays small.
func (s *Store) ListAll(ctx context.Context) (map[string][]schemas.Meter, error) {
	rows, err := s.table.CurrentOfAllOrganizations(ctx)
	if err != nil {
		return nil, err
	}
	return decodeLive(rows)
}

// decodeLive returns the meters of the live rows by organization. A row
// that does not decode is reported in an *InvalidMetersError and the
// others are still returned, so one bad definition does not stop every
// meter.
func decodeLive(rows []docstore.Row) (map[string][]schemas.Meter, error) {
	out := map[string][]schemas.Meter{}
	var invalid []InvalidMeter
	for _, r := range rows {
		if r.Deleted {
			continue
		}
		m, err := decode(r)
		if err != nil {
			invalid = append(invalid, invalidMeter(r, err))
			continue
		}
		out[r.OrgID] = append(out[r.OrgID], m)
	}
	if len(invalid) > 0 {
		return out, &InvalidMetersError{Meters: invalid}
	}
	return out, nil
}

// InvalidMeter is a live stored meter whose definition no longer
// validates (stored under older rules, or written around the API): it
// cannot be evaluated until it validates again or a fixed definition
// replaces it (a new revision).
type InvalidMeter struct {
	OrgID, Key string
	Revision   uint64
	// EventType is the event_type the definition names when it can still
	// be read as JSON, "" when not: the events the meter would meter.
	EventType string
	Err       error
}

// InvalidMetersError is what ListAll and List return, together with the
// valid meters, when some stored definitions no longer validate.
type InvalidMetersError struct {
	Meters []InvalidMeter
}

func (e *InvalidMetersError) Error() string {
	return errors.Join(e.Unwrap()...).Error()
}

func (e *InvalidMetersError) Unwrap() []error {
	errs := make([]error, len(e.Meters))
	for i, m := range e.Meters {
		errs[i] = m.Err
	}
	return errs
}

func invalidMeter(r docstore.Row, err error) InvalidMeter {
	var named struct {
		EventType string `json:"event_type"`
	}
	_ = json.Unmarshal([]byte(r.Definition), &named) // best effort: "" when unreadable
	return InvalidMeter{OrgID: r.OrgID, Key: r.Key, Revision: r.Revision, EventType: named.EventType, Err: err}
}

// Create stores a new meter and returns it with its revision and creation
// time. It returns ErrExists when a live meter has the key. Two concurrent
// creates of one key on different query replicas can both succeed; the
// later version wins and readings of the other revision are ignored.
func (s *Store) Create(ctx context.Context, orgID string, m schemas.Meter) (schemas.Meter, error) {
	if orgID == "" {
		return schemas.Meter{}, errNoOrg
	}
	prev, found, err := s.current(ctx, orgID, m.Key)
	if err != nil {
		return schemas.Meter{}, err
	}
	if found && !prev.Deleted {
		return schemas.Meter{}, ErrExists
	}
	m.Revision = 0 // assigned by the store, whatever the caller sent
	return s.write(ctx, orgID, m, prev.Version)
}

// Put creates the meter, or replaces the live one of the same key. A
// replacement with the same definition keeps its revision (and so its
// usage); a changed definition starts a new revision. It is how meters
// are loaded from a file at start.
func (s *Store) Put(ctx context.Context, orgID string, m schemas.Meter) (schemas.Meter, bool, error) {
	if orgID == "" {
		return schemas.Meter{}, false, errNoOrg
	}
	prev, found, err := s.current(ctx, orgID, m.Key)
	if err != nil {
		return schemas.Meter{}, false, err
	}
	if found && !prev.Deleted {
		if old, err := decode(prev); err == nil && schemas.SameDefinition(old, m) {
			if old.Name == m.Name && old.Description == m.Description {
				return old, false, nil
			}
			// Only the name or description changed: the events metered
			// are the same, so the meter keeps its revision and its usage.
			m.Revision, m.CreatedAt = old.Revision, old.CreatedAt
			out, err := s.write(ctx, orgID, m, prev.Version)
			return out, true, err
		}
	}
	m.Revision = 0
	out, err := s.write(ctx, orgID, m, prev.Version)
	return out, true, err
}

// write appends a live row for m above prevVersion (0 for a new key). A
// zero m.Revision starts a new revision; a set one is kept (a rename of an
// unchanged definition).
func (s *Store) write(ctx context.Context, orgID string, m schemas.Meter, prevVersion uint64) (schemas.Meter, error) {
	now := s.now().UTC()
	version := docstore.NextVersion(now, prevVersion)
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
	r := docstore.Row{OrgID: orgID, Key: m.Key, Revision: m.Revision, Definition: def, Version: version}
	if err := s.table.Append(ctx, r, now); err != nil {
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
		return ErrNotFound
	}
	r, found, err := s.current(ctx, orgID, key)
	if err != nil {
		return err
	}
	if !found || r.Deleted {
		return ErrNotFound
	}
	if err := s.table.Tombstone(ctx, r, s.now().UTC()); err != nil {
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

// Package catalogstore keeps the billing catalog (customers, plans and
// subscriptions) and the responses saved for idempotent API requests in
// ClickHouse, next to the meters and with the same revision scheme
// (internal/docstore): one table per kind, one row per change, the current
// state read with argMax by version so that it never depends on merges.
//
// Organization isolation is an invariant: every method refuses an empty
// organization and every statement binds org_id first, so no call can read
// or write another organization's rows.
//
// The checks behind ErrExists and ErrNotFound read the current row and
// then append: ClickHouse has no transactions, so two concurrent creates
// of one key (on two API replicas) can both succeed, and the later version
// is what every reader then sees. Requests that must not act twice carry
// an Idempotency-Key (SaveIdempotent, LookupIdempotent). Terminations of
// subscriptions are the exception to one-table-per-kind: they are appended
// to a table of their own that no update rewrites (terminations.go).
package catalogstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/docstore"
)

// Errors callers branch on.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// errNoOrg is returned for an empty organization id, which must never
// reach a query.
var errNoOrg = fmt.Errorf("catalogstore: %w", docstore.ErrNoOrg)

// The catalog's tables (schemas/clickhouse/0006-0010).
const (
	customersTable                = "customers"
	plansTable                    = "plans"
	subscriptionsTable            = "subscriptions"
	idempotencyKeyTable           = "idempotency_keys"
	subscriptionTerminationsTable = "subscription_terminations"
)

// Store reads and writes the catalog.
type Store struct {
	conn          driver.Conn
	customers     *docstore.Table
	plans         *docstore.Table
	subscriptions *docstore.Table
	now           func() time.Time
}

// New returns a Store on conn, which must be bound to Tally's database.
func New(conn driver.Conn) *Store {
	return &Store{
		conn:          conn,
		customers:     docstore.New(conn, customersTable),
		plans:         docstore.New(conn, plansTable),
		subscriptions: docstore.New(conn, subscriptionsTable),
		now:           time.Now,
	}
}

// live returns the current row of key in orgID, or ErrNotFound when the
// key was never written or is deleted.
func live(ctx context.Context, t *docstore.Table, orgID, key string) (docstore.Row, error) {
	if orgID == "" {
		return docstore.Row{}, errNoOrg
	}
	if key == "" {
		return docstore.Row{}, ErrNotFound
	}
	r, found, err := t.Current(ctx, orgID, key)
	if err != nil {
		return docstore.Row{}, err
	}
	if !found || r.Deleted {
		return docstore.Row{}, ErrNotFound
	}
	return r, nil
}

// change is one write of a document. Its version and time are fixed
// before the document is encoded, because the document carries them (a
// new key's revision is its first version, CreatedAt and UpdatedAt are the
// time).
type change struct {
	version uint64
	at      time.Time // UTC, milliseconds: what the API shows
	now     time.Time
}

// begin starts a change to a key whose current row is prev (the zero Row
// for a key never written).
func (s *Store) begin(prev docstore.Row) change {
	now := s.now().UTC()
	return change{version: docstore.NextVersion(now, prev.Version), at: now.Truncate(time.Millisecond), now: now}
}

// write appends doc as the live row of key with revision.
func (s *Store) write(ctx context.Context, t *docstore.Table, orgID, key string, revision uint64, c change, doc any) error {
	def, err := encode(doc)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return t.Append(ctx, docstore.Row{OrgID: orgID, Key: key, Revision: revision, Definition: def, Version: c.version}, c.now)
}

// remove deletes the live key of orgID, or returns ErrNotFound.
func (s *Store) remove(ctx context.Context, t *docstore.Table, orgID, key string) error {
	r, err := live(ctx, t, orgID, key)
	if err != nil {
		return err
	}
	return t.Tombstone(ctx, r, s.now().UTC())
}

// encode writes doc as JSON without HTML escaping, so that the stored
// strings are the values themselves ("a&b", not "a\u0026b") for the
// visitParamExtractString filters of the list queries.
func encode(doc any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil
}

// decode reads a stored document.
func decode[T any](r docstore.Row) (T, error) {
	var v T
	if err := json.Unmarshal([]byte(r.Definition), &v); err != nil {
		return v, fmt.Errorf("stored document %s/%s is invalid: %w", r.OrgID, r.Key, err)
	}
	return v, nil
}

// decodeAll reads stored documents; one that does not decode fails the
// call, since every document was written by this package.
func decodeAll[T any](rows []docstore.Row) ([]T, error) {
	out := make([]T, 0, len(rows))
	for _, r := range rows {
		v, err := decode[T](r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Package docstore keeps versioned JSON documents by (org_id, key) in a
// ClickHouse table: the storage scheme that meters and the catalog
// (customers, plans, subscriptions) share, so that the API's definitions
// live next to the usage they describe and no second database is needed.
//
// A table has the columns
//
//	org_id String, key String, revision UInt64, definition String,
//	deleted UInt8, version UInt64, updated_at DateTime('UTC')
//
// with ENGINE = ReplacingMergeTree(version) ORDER BY (org_id, key). Every
// change appends a row with a higher version; a deletion appends a
// tombstone (deleted = 1). The current state of a key is its highest
// version, read with argMax(..., version) GROUP BY org_id, key, so reads
// never depend on background merges having run. A revision is the version
// that created a key: a key deleted and created again gets a new, higher
// revision.
//
// Organization isolation is enforced here: every method but
// CurrentOfAllOrganizations requires an organization and binds it first in
// its SQL.
package docstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/chclient"
)

// ErrNoOrg is returned for an empty organization id: a caller that lost
// the organization must fail rather than read (or overwrite) another
// organization's documents.
var ErrNoOrg = errors.New("organization id is required")

// RequireOrg returns ErrNoOrg when orgID is empty.
func RequireOrg(orgID string) error {
	if orgID == "" {
		return ErrNoOrg
	}
	return nil
}

// Row is the current (or a new) row of one key.
type Row struct {
	OrgID      string
	Key        string
	Revision   uint64
	Definition string // the JSON document
	Deleted    bool
	Version    uint64
}

// Table is one table of versioned documents.
type Table struct {
	conn driver.Conn
	name string
}

// tableName restricts table names, which are identifiers in SQL and
// cannot be bound as parameters.
var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// New returns the table name on conn, which must be bound to Tally's
// database. name is a constant of the calling store; an invalid one is a
// programming error and panics.
func New(conn driver.Conn, name string) *Table {
	if !tableName.MatchString(name) {
		panic(fmt.Sprintf("docstore: invalid table name %q", name))
	}
	return &Table{conn: conn, name: name}
}

// NextVersion returns the version of a change made at now to a key whose
// current version is prev (0 for a new key): now in Unix nanoseconds, but
// always above prev, so that changes made within one clock tick (or on a
// host whose clock is behind) still supersede each other in order.
func NextVersion(now time.Time, prev uint64) uint64 {
	return max(uint64(now.UnixNano()), prev+1)
}

// selectCurrent reads the current row of each key; callers append WHERE
// (org_id first), GROUP BY org_id, key and optionally HAVING.
func (t *Table) selectCurrent() string {
	return `SELECT org_id, key, argMax(revision, version), argMax(definition, version),
	               argMax(deleted, version), max(version)
	        FROM ` + t.name
}

// Current returns the current row of key in orgID, deleted or not; found
// is false when the key was never written.
func (t *Table) Current(ctx context.Context, orgID, key string) (row Row, found bool, err error) {
	if err := RequireOrg(orgID); err != nil {
		return Row{}, false, err
	}
	rows, err := t.query(ctx, orgID, t.selectCurrent()+`
	        WHERE org_id = ? AND key = ?
	        GROUP BY org_id, key`, orgID, key)
	if err != nil {
		return Row{}, false, err
	}
	if len(rows) == 0 {
		return Row{}, false, nil
	}
	return rows[0], true, nil
}

// Match narrows List to documents whose current definition has the
// top-level string property Property equal to Value.
type Match struct {
	Property string
	Value    string
}

// List returns the live (not deleted) current rows of orgID whose key is
// greater than after, sorted by key, at most limit of them (limit <= 0: no
// limit). Matches are applied in SQL with visitParamExtractString (the
// JSON functions of ClickHouse 18.16), which finds the first occurrence of
// "property": anywhere in the document: use it for properties of the
// document's top level that nothing nested shares a name with.
func (t *Table) List(ctx context.Context, orgID, after string, limit int, matches ...Match) ([]Row, error) {
	if err := RequireOrg(orgID); err != nil {
		return nil, err
	}
	if limit > 0 && len(matches) == 0 {
		return t.listPage(ctx, orgID, after, limit)
	}
	query := t.selectCurrent() + `
	        WHERE org_id = ? AND key > ?
	        GROUP BY org_id, key
	        HAVING argMax(deleted, version) = 0`
	args := []any{orgID, after}
	for _, m := range matches {
		query += ` AND visitParamExtractString(argMax(definition, version), ?) = ?`
		args = append(args, m.Property, m.Value)
	}
	query += ` ORDER BY key`
	if limit > 0 {
		query += ` LIMIT ?`
		args = append(args, limit)
	}
	return t.query(ctx, orgID, query, args...)
}

// listPage is List of one page without matches in two steps: the page's
// keys first, from the small key, version and deleted columns, then the
// definitions of those keys only. One step would read (and aggregate) the
// definition of every key after the cursor for each page, which makes
// paging through large documents (a plan can be a megabyte) quadratic.
//
// The keys are chosen with GLOBAL IN: on a cluster (issue 8) t is a
// Distributed table, and ClickHouse refuses a subquery on a Distributed
// table inside IN of a query on one ("Double-distributed IN/JOIN
// subqueries is denied"). GLOBAL runs the subquery once, across every
// shard, and ships its keys to each shard as a temporary table; on one
// server it is the plain IN it was.
func (t *Table) listPage(ctx context.Context, orgID, after string, limit int) ([]Row, error) {
	return t.query(ctx, orgID, t.selectCurrent()+`
	        WHERE org_id = ? AND key GLOBAL IN (
	            SELECT key FROM `+t.name+`
	            WHERE org_id = ? AND key > ?
	            GROUP BY key
	            HAVING argMax(deleted, version) = 0
	            ORDER BY key
	            LIMIT ?)
	        GROUP BY org_id, key
	        HAVING argMax(deleted, version) = 0
	        ORDER BY key`, orgID, orgID, after, limit)
}

// CurrentOfAllOrganizations returns the current row of every key of every
// organization, deleted ones included, sorted by organization and key. It
// is the one read across organizations, for a component that serves them
// all (the aggregator evaluates every organization's meters).
func (t *Table) CurrentOfAllOrganizations(ctx context.Context) ([]Row, error) {
	return t.query(ctx, "", t.selectCurrent()+`
	        GROUP BY org_id, key
	        ORDER BY org_id, key`)
}

// query runs a read of current rows. orgID is the organization the query
// is scoped to ("" for CurrentOfAllOrganizations): a row of another one is
// refused, a second line of defence for the isolation the SQL provides.
func (t *Table) query(ctx context.Context, orgID, query string, args ...any) ([]Row, error) {
	rows, err := t.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t.name, err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var r Row
		var deleted uint8
		if err := rows.Scan(&r.OrgID, &r.Key, &r.Revision, &r.Definition, &deleted, &r.Version); err != nil {
			return nil, fmt.Errorf("read %s: %w", t.name, err)
		}
		if orgID != "" && r.OrgID != orgID {
			return nil, fmt.Errorf("read %s: a row of another organization was returned", t.name)
		}
		r.Deleted = deleted == 1
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", t.name, err)
	}
	return out, nil
}

// Append writes r as the newest row of its key. The caller sets
// r.Version with NextVersion; updatedAt is informational.
//
// A transient failure is retried within ctx (chclient.RetryTransient): on
// a cluster, ClickHouse 18.16 refuses a quorum insert into the table while
// another one waits for its quorum (286), so two writes of an
// organization that overlap would fail one of them. Each attempt writes
// the same row, version included, so a row stored twice (an attempt that
// failed after storing it: 319, the quorum's outcome unknown, leaves it
// on one replica, to be fetched by the others; a synchronous Distributed
// insert refused by one shard has written the others) is two identical
// rows, which argMax and the ReplacingMergeTree fold into one. A retry
// that lands after a later change of the key does not undo it: the later
// change has the higher version. When the retries end in failure the row
// may still be stored, and read later, as after a connection lost once
// the server committed on one server: the caller's answer (503) says
// "retry", and a retry of the caller's request sees the key written.
func (t *Table) Append(ctx context.Context, r Row, updatedAt time.Time) error {
	if err := RequireOrg(r.OrgID); err != nil {
		return err
	}
	if r.Key == "" {
		return fmt.Errorf("write %s: empty key", t.name)
	}
	var deleted uint8
	if r.Deleted {
		deleted = 1
	}
	updatedAt = updatedAt.UTC()
	err := chclient.RetryTransient(ctx, func() error {
		// A batch, not Exec("INSERT ... VALUES"): on ClickHouse 18.16 an
		// inline VALUES insert never returns. The column list is required:
		// without it the batch has no columns on 18.16. A batch is sent
		// once, so each attempt prepares its own.
		batch, err := t.conn.PrepareBatch(ctx, "INSERT INTO "+t.name+
			" (org_id, key, revision, definition, deleted, version, updated_at)")
		if err != nil {
			return err
		}
		if err := batch.Append(r.OrgID, r.Key, r.Revision, r.Definition, deleted, r.Version, updatedAt); err != nil {
			_ = batch.Abort()
			return err
		}
		return batch.Send()
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", t.name, err)
	}
	return nil
}

// Tombstone deletes the key of current (its current, live row) at now: it
// appends a copy marked deleted, with a higher version.
func (t *Table) Tombstone(ctx context.Context, current Row, now time.Time) error {
	current.Deleted = true
	current.Version = NextVersion(now, current.Version)
	return t.Append(ctx, current, now)
}

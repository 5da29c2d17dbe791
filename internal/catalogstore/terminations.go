package catalogstore

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/docstore"
	"github.com/tally-oss/tally/schemas"
)

// Terminations of subscriptions live in their own append-only table
// (schemas/clickhouse/0010_subscription_terminations.sql), not only in the
// subscription's document: an update reads a document and appends a
// changed copy, and without transactions a termination written between
// the two would be overwritten by the stale copy. A row of the table is
// never rewritten, and every read of a subscription overlays the earliest
// termination of its current revision onto the decoded document.

// terminationKey names the termination of one revision of a subscription.
type terminationKey struct {
	id       string
	revision uint64
}

// maxTerminationIDBytes bounds the ids of one read of terminations, as
// they appear in the query (quoted, every byte escaped in the worst case,
// and separated): the query stays below ClickHouse's max_query_size (256
// KiB by default). A longer list is read in several queries.
const maxTerminationIDBytes = 128 << 10

// quotedSize is the most bytes id takes in the IN list of a query.
func quotedSize(id string) int { return 2*len(id) + 4 }

// terminations returns the earliest termination of every revision of the
// subscriptions ids of orgID that has one.
func (s *Store) terminations(ctx context.Context, orgID string, ids []string) (map[terminationKey]time.Time, error) {
	if orgID == "" {
		return nil, errNoOrg
	}
	out := map[terminationKey]time.Time{}
	for len(ids) > 0 {
		n, size := 0, 0
		for n < len(ids) && (n == 0 || size+quotedSize(ids[n]) <= maxTerminationIDBytes) {
			size += quotedSize(ids[n])
			n++
		}
		if err := s.readTerminations(ctx, orgID, ids[:n], out); err != nil {
			return nil, err
		}
		ids = ids[n:]
	}
	return out, nil
}

// readTerminations adds the terminations of ids (bound, one placeholder
// each) of orgID to out.
func (s *Store) readTerminations(ctx context.Context, orgID string, ids []string, out map[terminationKey]time.Time) error {
	args := make([]any, 0, len(ids)+1)
	args = append(args, orgID)
	for _, id := range ids {
		args = append(args, id)
	}
	rows, err := s.conn.Query(ctx, `SELECT org_id, external_id, revision, min(terminated_at)
	        FROM `+subscriptionTerminationsTable+`
	        WHERE org_id = ? AND external_id IN (`+strings.Repeat("?, ", len(ids)-1)+`?)
	        GROUP BY org_id, external_id, revision`, args...)
	if err != nil {
		return fmt.Errorf("read subscription terminations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var org string
		var k terminationKey
		var ns int64
		if err := rows.Scan(&org, &k.id, &k.revision, &ns); err != nil {
			return fmt.Errorf("read subscription terminations: %w", err)
		}
		if org != orgID {
			return fmt.Errorf("read subscription terminations: a row of another organization was returned")
		}
		out[k] = time.Unix(0, ns).UTC()
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read subscription terminations: %w", err)
	}
	return nil
}

// overlay sets sub's TerminatedAt to the termination of its stored
// revision r, when the table has one: the table is the truth. A document
// without one keeps what it holds (terminations stored before the table
// existed are in the document).
func overlay(sub *schemas.Subscription, r docstore.Row, terms map[terminationKey]time.Time) {
	if at, ok := terms[terminationKey{r.Key, r.Revision}]; ok {
		sub.TerminatedAt = &at
	}
}

// liveSubscription returns the current row of the live subscription
// externalID of orgID and its document with the termination overlaid, or
// ErrNotFound.
func (s *Store) liveSubscription(ctx context.Context, orgID, externalID string) (docstore.Row, schemas.Subscription, error) {
	r, err := live(ctx, s.subscriptions, orgID, externalID)
	if err != nil {
		return docstore.Row{}, schemas.Subscription{}, err
	}
	sub, err := decode[schemas.Subscription](r)
	if err != nil {
		return docstore.Row{}, schemas.Subscription{}, err
	}
	terms, err := s.terminations(ctx, orgID, []string{r.Key})
	if err != nil {
		return docstore.Row{}, schemas.Subscription{}, err
	}
	overlay(&sub, r, terms)
	return r, sub, nil
}

// Termination times are stored as Unix nanoseconds, which hold the years
// 1970 to 2262 when kept non-negative (see terminationVersion).
var (
	minTermination = time.Unix(0, 0)
	maxTermination = time.Unix(0, math.MaxInt64)
)

// terminationVersion is the version of a termination row at ns: higher
// for earlier terminations, so that ReplacingMergeTree(version) keeps the
// earliest when a merge folds the rows of one revision.
func terminationVersion(ns int64) uint64 {
	return uint64(math.MaxInt64 - ns)
}

// insertTermination appends the termination at of revision of the
// subscription externalID of orgID. A retried insert that writes the row
// twice is harmless: the copies are identical.
func (s *Store) insertTermination(ctx context.Context, orgID, externalID string, revision uint64, at time.Time) error {
	if orgID == "" {
		return errNoOrg
	}
	if at.Before(minTermination) || at.After(maxTermination) {
		return fmt.Errorf("termination time %s is outside %d-%d", at.Format(time.RFC3339Nano), minTermination.Year(), maxTermination.Year())
	}
	ns := at.UnixNano()
	createdAt := s.now().UTC()
	// A transient failure is retried within ctx (chclient.RetryTransient;
	// on a cluster, 18.16 refuses a quorum insert while another into the
	// table awaits its quorum: 286). Every attempt writes the same row, so
	// one stored by an attempt that failed anyway (319: on one replica,
	// reaching the others later; a Distributed insert refused by another
	// shard) only doubles it, and reads fold a revision's terminations by
	// min(terminated_at). When the retries end in failure the termination
	// may still be stored and take effect: the API answered 503, and a
	// retry of the request finds the subscription terminated at that time.
	err := chclient.RetryTransient(ctx, func() error {
		// A batch with the column list: an inline VALUES insert never
		// returns on ClickHouse 18.16, and a batch without the list has no
		// columns. A batch is sent once, so each attempt prepares its own.
		batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+subscriptionTerminationsTable+
			" (org_id, external_id, revision, terminated_at, version, created_at)")
		if err != nil {
			return err
		}
		if err := batch.Append(orgID, externalID, revision, ns, terminationVersion(ns), createdAt); err != nil {
			_ = batch.Abort()
			return err
		}
		return batch.Send()
	})
	if err != nil {
		return fmt.Errorf("store termination of %s: %w", externalID, err)
	}
	return nil
}

package catalogstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tally-oss/tally/internal/chclient"
)

// The responses an API saves for requests that carry an Idempotency-Key,
// so that a retry within the window (24 hours) gets the first answer
// instead of acting twice. scope separates the endpoints (a key may be
// reused for another kind of request) and requestHash lets the API tell
// a retry from a different request under the same key.
//
// Racing requests converge: both may act and save, but every lookup
// returns the entry that sorts first by version, and SaveIdempotent
// returns only once no entry can still appear before its own (see
// idempotency_clock.go for how, and for the window that remains), so an
// API that saves and then looks up answers every racer with the response
// every later retry gets. Entries are never expired: see
// schemas/clickhouse/0009_idempotency_keys.sql.

// MaxIdempotentBody bounds a saved response body: 1 MiB. Every save
// writes the whole body to ClickHouse and every replay reads it back, and
// entries are kept until an operator drops their month; an API answers a
// larger response without saving it (a retry computes it again) rather
// than letting one request store megabytes.
const MaxIdempotentBody = 1 << 20

// ErrBodyTooLarge is returned by SaveIdempotent for a body over
// MaxIdempotentBody; nothing is saved.
var ErrBodyTooLarge = fmt.Errorf("idempotent response body is larger than %d bytes", MaxIdempotentBody)

// SaveIdempotent saves the response (status and body) to the request with
// requestHash under key in scope, versioned by the ClickHouse server's
// clock, and returns once the entry LookupIdempotent returns for key can
// no longer change (up to a second and settleMargin later). Saving again
// does not replace an earlier entry: LookupIdempotent returns the first.
// An error wrapping ErrSlowSave means the entry was saved, but too slowly
// for that guarantee while another request saved under key.
func (s *Store) SaveIdempotent(ctx context.Context, orgID, scope, key string, requestHash string, status int, body []byte) error {
	if orgID == "" {
		return errNoOrg
	}
	if scope == "" || key == "" {
		return errors.New("idempotency scope and key are required")
	}
	if status < 100 || status > 599 {
		return fmt.Errorf("idempotent response status %d is not an HTTP status", status)
	}
	if len(body) > MaxIdempotentBody {
		return fmt.Errorf("save idempotent response: %w", ErrBodyTooLarge)
	}
	st, err := s.stampIdempotent(ctx)
	if err != nil {
		return fmt.Errorf("save idempotent response: %w", err)
	}
	if testHookBeforeIdempotentInsert != nil {
		testHookBeforeIdempotentInsert()
	}
	// A transient failure is retried within ctx (chclient.RetryTransient;
	// on a cluster, 18.16 refuses a quorum insert while another into the
	// table awaits its quorum: 286). Every attempt writes the same entry,
	// stamp included: an attempt that failed after storing it (319, the
	// quorum's outcome unknown: the entry is on one replica and reaches
	// the others later; a Distributed insert refused by another shard)
	// leaves an identical row, and lookups, which return the first row by
	// (version, request_hash, status, body), cannot tell two copies from
	// one. The attempts count in the save's time, so a save slowed by them
	// past settleMargin while another racer saved is an ErrSlowSave, as
	// any slow save; and when they end in failure, the entry may still be
	// stored: the API then answers without having saved (and logs it), a
	// later retry of the request may be replayed this response.
	err = chclient.RetryTransient(ctx, func() error {
		// A batch, not Exec("INSERT ... VALUES"), which never returns on
		// ClickHouse 18.16; the column list is required there too. A
		// batch is sent once, so each attempt prepares its own.
		batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+idempotencyKeyTable+
			" (org_id, scope, key, version, created_at, request_hash, status, body)")
		if err != nil {
			return err
		}
		if err := batch.Append(orgID, scope, key, st.version, st.createdAt, requestHash, uint16(status), string(body)); err != nil {
			_ = batch.Abort()
			return err
		}
		return batch.Send()
	})
	if err != nil {
		return fmt.Errorf("save idempotent response: %w", err)
	}
	if err := s.settleIdempotent(ctx, orgID, scope, key, st); err != nil {
		return fmt.Errorf("save idempotent response under %q: %w", key, err)
	}
	return nil
}

// LookupIdempotent returns the first response saved under key in scope at
// or after since (now minus the window); found is false when there is
// none.
func (s *Store) LookupIdempotent(ctx context.Context, orgID, scope, key string, since time.Time) (requestHash string, status int, body []byte, found bool, err error) {
	if orgID == "" {
		return "", 0, nil, false, errNoOrg
	}
	if scope == "" || key == "" {
		return "", 0, nil, false, errors.New("idempotency scope and key are required")
	}
	if epoch := time.Unix(0, 0); since.Before(epoch) {
		since = epoch // version and created_at are unsigned
	}
	// created_at (seconds) selects the partitions, version (nanoseconds)
	// is the exact bound. Ties on version are broken by the row's content
	// so that every reader picks the same entry.
	rows, err := s.conn.Query(ctx, `SELECT request_hash, status, body
		FROM `+idempotencyKeyTable+`
		WHERE org_id = ? AND scope = ? AND key = ?
		  AND created_at >= toDateTime(?) AND version >= ?
		ORDER BY version, request_hash, status, body
		LIMIT 1`, orgID, scope, key, since.Unix(), uint64(since.UnixNano()))
	if err != nil {
		return "", 0, nil, false, fmt.Errorf("look up idempotent response: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", 0, nil, false, fmt.Errorf("look up idempotent response: %w", err)
		}
		return "", 0, nil, false, nil
	}
	var code uint16
	var text string
	if err := rows.Scan(&requestHash, &code, &text); err != nil {
		return "", 0, nil, false, fmt.Errorf("look up idempotent response: %w", err)
	}
	return requestHash, int(code), []byte(text), true, nil
}

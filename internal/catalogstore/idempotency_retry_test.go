package catalogstore

import (
	"context"
	"testing"
	"time"
)

// TestIdempotencySlowSaveStoredTwiceIsNotReported: a save's insert is
// retried after a transient failure (chclient.RetryTransient), and an
// attempt that failed may have stored the entry anyway (319 on a cluster,
// a connection lost after the commit), so the entry can be stored twice.
// Its own copy is not another racer's entry: a slow save that nothing
// raced with is not an ErrSlowSave.
func TestIdempotencySlowSaveStoredTwiceIsNotReported(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	st, err := s.stampIdempotent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.began = st.began.Add(-2 * settleMargin) // slow: the attempts took long
	for range 2 {
		batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+idempotencyKeyTable+
			" (org_id, scope, key, version, created_at, request_hash, status, body)")
		if err != nil {
			t.Fatal(err)
		}
		if err := batch.Append("acme", "scope", "k", st.version, st.createdAt, "h", uint16(200), "body"); err != nil {
			t.Fatal(err)
		}
		if err := batch.Send(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.settleIdempotent(ctx, "acme", "scope", "k", st); err != nil {
		t.Errorf("settle after the entry was stored twice: %v, want nil (no other entry)", err)
	}
	since := time.Now().Add(-24 * time.Hour)
	if got := lookupAt(t, s, "acme", "scope", "k", since); got != (lookup{"h", 200, "body", true}) {
		t.Errorf("lookup: %+v", got)
	}
}

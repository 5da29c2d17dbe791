package catalogstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

type lookup struct {
	hash   string
	status int
	body   string
	found  bool
}

func lookupAt(t *testing.T, s *Store, orgID, scope, key string, since time.Time) lookup {
	t.Helper()
	hash, status, body, found, err := s.LookupIdempotent(context.Background(), orgID, scope, key, since)
	if err != nil {
		t.Fatal(err)
	}
	return lookup{hash, status, string(body), found}
}

func saveAt(t *testing.T, s *Store, at time.Time, orgID, scope, key, hash string, status int, body string) {
	t.Helper()
	s.now = func() time.Time { return at }
	if err := s.SaveIdempotent(context.Background(), orgID, scope, key, hash, status, []byte(body)); err != nil {
		t.Fatal(err)
	}
}

// TestIdempotencyFirstWins: of two racing requests that both saved, every
// lookup returns the first, including when they saved in the same
// nanosecond; a lookup only sees entries saved since its window started,
// to the nanosecond.
func TestIdempotencyFirstWins(t *testing.T) {
	s := newStore(t)
	day := 24 * time.Hour
	t0 := time.Date(2026, 1, 2, 12, 0, 0, 500_000_000, time.UTC)
	t1 := t0.Add(200 * time.Millisecond) // in the same second as t0

	if got := lookupAt(t, s, "acme", "create_plan", "k1", t0.Add(-day)); got.found {
		t.Fatalf("found %+v before any save", got)
	}
	saveAt(t, s, t1, "acme", "create_plan", "k1", "h2", 409, `{"code":"exists"}`) // inserted first, saved later
	saveAt(t, s, t0, "acme", "create_plan", "k1", "h1", 201, "\x00binary\xff body")
	first := lookup{"h1", 201, "\x00binary\xff body", true}
	if got := lookupAt(t, s, "acme", "create_plan", "k1", t0.Add(-day)); got != first {
		t.Errorf("lookup %+v, want the first save %+v", got, first)
	}
	if got := lookupAt(t, s, "acme", "create_plan", "k1", t0); got != first {
		t.Errorf("window starting at the first save: %+v", got)
	}
	if got := lookupAt(t, s, "acme", "create_plan", "k1", t0.Add(time.Nanosecond)); got != (lookup{"h2", 409, `{"code":"exists"}`, true}) {
		t.Errorf("window starting after the first save: %+v, want the second", got)
	}
	if got := lookupAt(t, s, "acme", "create_plan", "k1", t1.Add(time.Nanosecond)); got.found {
		t.Errorf("window starting after both saves: %+v", got)
	}
	if got := lookupAt(t, s, "acme", "create_plan", "k1", time.Time{}); got != first {
		t.Errorf("zero since: %+v", got)
	}

	// Scopes and keys are separate.
	if got := lookupAt(t, s, "acme", "create_customer", "k1", t0.Add(-day)); got.found {
		t.Errorf("another scope sees %+v", got)
	}
	if got := lookupAt(t, s, "acme", "create_plan", "k2", t0.Add(-day)); got.found {
		t.Errorf("another key sees %+v", got)
	}

	// Saved in the same nanosecond (two hosts): every reader picks the
	// same one.
	tie := t0.Add(time.Hour)
	saveAt(t, s, tie, "acme", "create_plan", "k3", "hb", 200, "b")
	saveAt(t, s, tie, "acme", "create_plan", "k3", "ha", 200, "a")
	for range 3 {
		if got := lookupAt(t, s, "acme", "create_plan", "k3", tie); got != (lookup{"ha", 200, "a", true}) {
			t.Errorf("tie: %+v", got)
		}
	}
}

func TestIdempotencyRefusesBadInput(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, tc := range []struct {
		scope, key string
		status     int
	}{{"", "k", 200}, {"s", "", 200}, {"s", "k", 0}, {"s", "k", 99}, {"s", "k", 600}} {
		if err := s.SaveIdempotent(ctx, "acme", tc.scope, tc.key, "h", tc.status, nil); err == nil {
			t.Errorf("SaveIdempotent(scope %q, key %q, status %d) succeeded", tc.scope, tc.key, tc.status)
		}
	}
	if _, _, _, _, err := s.LookupIdempotent(ctx, "acme", "", "k", time.Now()); err == nil {
		t.Error("lookup without a scope succeeded")
	}
}

// TestIdempotencyBodyCap: a body of MaxIdempotentBody bytes is saved; one
// byte more is refused with ErrBodyTooLarge and nothing is saved, so a
// retry computes its answer again.
func TestIdempotencyBodyCap(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	largest := strings.Repeat("x", MaxIdempotentBody)
	if err := s.SaveIdempotent(ctx, "acme", "scope", "largest", "h", 200, []byte(largest)); err != nil {
		t.Fatal(err)
	}
	if got := lookupAt(t, s, "acme", "scope", "largest", time.Time{}); got != (lookup{"h", 200, largest, true}) {
		t.Errorf("a body of MaxIdempotentBody bytes: found %v, %d bytes", got.found, len(got.body))
	}
	err := s.SaveIdempotent(ctx, "acme", "scope", "larger", "h", 200, []byte(largest+"x"))
	if !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("a body of MaxIdempotentBody+1 bytes: %v, want ErrBodyTooLarge", err)
	}
	if got := lookupAt(t, s, "acme", "scope", "larger", time.Time{}); got.found {
		t.Errorf("the refused body was saved (%d bytes)", len(got.body))
	}
}

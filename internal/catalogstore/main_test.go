package catalogstore

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/docstore"
	"github.com/tally-oss/tally/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newStore returns a Store on a fresh, migrated database whose clock
// starts at 2026-01-02 12:00 UTC and advances a millisecond per reading,
// so that every change has its own, predictable time.
func newStore(t *testing.T) *Store {
	t.Helper()
	conn := testenv.MigratedDatabase(t)
	s := New(conn)
	clock := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time {
		clock = clock.Add(time.Millisecond)
		return clock
	}
	return s
}

// sameJSON fails the test unless got and want encode to the same JSON:
// times in the same zone and decimals with the same digits compare equal
// however they were built.
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// revisionOf returns the stored revision of a key of table t, deleted or
// not.
func revisionOf(t *testing.T, table *docstore.Table, orgID, key string) uint64 {
	t.Helper()
	r, found, err := table.Current(context.Background(), orgID, key)
	if err != nil || !found {
		t.Fatalf("revision of %s: found %v, %v", key, found, err)
	}
	return r.Revision
}

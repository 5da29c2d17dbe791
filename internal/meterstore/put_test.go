package meterstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tally-oss/tally/schemas"
)

// TestPut: the same definition keeps its revision (and its usage), a
// changed name or description keeps it too, a changed definition or a
// deleted meter gets a new one.
func TestPut(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	first, changed, err := s.Put(ctx, "acme", meter(t, tokensDef))
	if err != nil || !changed {
		t.Fatalf("first Put: changed %v, %v", changed, err)
	}
	same, changed, err := s.Put(ctx, "acme", meter(t, tokensDef))
	if err != nil || changed || same.Revision != first.Revision {
		t.Errorf("same Put: changed %v, revision %d (was %d), %v", changed, same.Revision, first.Revision, err)
	}

	renamed := meter(t, tokensDef)
	renamed.Name, renamed.Description = "LLM tokens", "Tokens used by requests"
	got, changed, err := s.Put(ctx, "acme", renamed)
	if err != nil || !changed || got.Revision != first.Revision || !got.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("renamed Put: changed %v, revision %d (was %d), %v", changed, got.Revision, first.Revision, err)
	}
	if stored, _ := s.Get(ctx, "acme", "tokens"); stored.Name != "LLM tokens" || stored.Revision != first.Revision {
		t.Errorf("stored after rename: %+v", stored)
	}

	redefined := meter(t, `{"key": "tokens", "event_type": "llm", "aggregation": "MAX", "value_property": "$.tokens"}`)
	got, changed, err = s.Put(ctx, "acme", redefined)
	if err != nil || !changed || got.Revision <= first.Revision {
		t.Errorf("redefined Put: changed %v, revision %d (was %d), %v", changed, got.Revision, first.Revision, err)
	}
	if stored, _ := s.Get(ctx, "acme", "tokens"); stored.Aggregation != schemas.AggMax || stored.Revision != got.Revision {
		t.Errorf("stored after redefinition: %+v", stored)
	}

	if err := s.Delete(ctx, "acme", "tokens"); err != nil {
		t.Fatal(err)
	}
	back, changed, err := s.Put(ctx, "acme", redefined)
	if err != nil || !changed || back.Revision <= got.Revision {
		t.Errorf("Put after delete: changed %v, revision %d (was %d), %v", changed, back.Revision, got.Revision, err)
	}
}

// TestVersionsOrderedUnderAFrozenClock: changes made within one clock
// tick still supersede each other in order.
func TestVersionsOrderedUnderAFrozenClock(t *testing.T) {
	s := newStore(t)
	frozen := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return frozen }
	ctx := context.Background()
	first, err := s.Create(ctx, "acme", meter(t, callsDef))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "acme", "calls"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "acme", "calls"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted in the same tick: %v", err)
	}
	second, err := s.Create(ctx, "acme", meter(t, callsDef))
	if err != nil {
		t.Fatal(err)
	}
	if second.Revision <= first.Revision {
		t.Errorf("revision %d after %d", second.Revision, first.Revision)
	}
	if got, err := s.Get(ctx, "acme", "calls"); err != nil || got.Revision != second.Revision {
		t.Errorf("Get = %+v, %v", got, err)
	}
}

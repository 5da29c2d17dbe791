package meterstore

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newStore returns a Store on a fresh, migrated database.
func newStore(t *testing.T) *Store {
	t.Helper()
	conn := testenv.MigratedDatabase(t)
	return New(conn)
}

func meter(t *testing.T, def string) schemas.Meter {
	t.Helper()
	m, err := schemas.ParseMeter([]byte(def))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const (
	tokensDef = `{"key": "tokens", "name": "Tokens", "event_type": "llm", "aggregation": "SUM", "value_property": "$.tokens",
		"group_by": {"model": "$.model"}, "filter": {"status": {"in": ["ok", "cached"]}}}`
	callsDef = `{"key": "calls", "event_type": "api", "aggregation": "COUNT"}`
)

func TestCreateGetListDelete(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	created, err := s.Create(ctx, "acme", meter(t, tokensDef))
	if err != nil {
		t.Fatal(err)
	}
	if created.Revision == 0 || created.CreatedAt.IsZero() {
		t.Fatalf("created %+v has no revision or creation time", created)
	}
	got, err := s.Get(ctx, "acme", "tokens")
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != created.Revision || !got.CreatedAt.Equal(created.CreatedAt) || !schemas.SameDefinition(got, created) || got.Name != "Tokens" {
		t.Errorf("Get = %+v, want %+v", got, created)
	}
	// The stored meter is compiled: group keys are usable for queries.
	if !got.HasGroupKey("model") || !slices.Equal(got.GroupKeys(), []string{"model"}) {
		t.Errorf("group keys %v", got.GroupKeys())
	}

	if _, err := s.Create(ctx, "acme", meter(t, tokensDef)); !errors.Is(err, ErrExists) {
		t.Errorf("second Create: %v, want ErrExists", err)
	}
	if _, err := s.Create(ctx, "acme", meter(t, callsDef)); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if keys := keysOf(list); !slices.Equal(keys, []string{"calls", "tokens"}) {
		t.Errorf("List keys %v", keys)
	}

	if err := s.Delete(ctx, "acme", "tokens"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "acme", "tokens"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get deleted: %v", err)
	}
	if err := s.Delete(ctx, "acme", "tokens"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete twice: %v", err)
	}
	if err := s.Delete(ctx, "acme", "never"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete unknown: %v", err)
	}
	list, _ = s.List(ctx, "acme")
	if keys := keysOf(list); !slices.Equal(keys, []string{"calls"}) {
		t.Errorf("List after delete %v", keys)
	}

	// Recreated under the same key: a new, higher revision.
	again, err := s.Create(ctx, "acme", meter(t, tokensDef))
	if err != nil {
		t.Fatal(err)
	}
	if again.Revision <= created.Revision {
		t.Errorf("recreated revision %d, first was %d", again.Revision, created.Revision)
	}
}

// TestCreateIgnoresClientRevision: a revision sent by a client is never
// stored; readings of an old definition must not be reachable by naming it.
func TestCreateIgnoresClientRevision(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	m := meter(t, callsDef)
	m.Revision = 7
	created, err := s.Create(ctx, "acme", m)
	if err != nil {
		t.Fatal(err)
	}
	if created.Revision == 7 {
		t.Error("Create kept the caller's revision")
	}
}

func TestOrganizationsIsolated(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	acme, err := s.Create(ctx, "acme", meter(t, tokensDef))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "globex", "tokens"); !errors.Is(err, ErrNotFound) {
		t.Errorf("globex sees acme's meter: %v", err)
	}
	if err := s.Delete(ctx, "globex", "tokens"); !errors.Is(err, ErrNotFound) {
		t.Errorf("globex deletes acme's meter: %v", err)
	}
	if list, _ := s.List(ctx, "globex"); len(list) != 0 {
		t.Errorf("globex lists %v", keysOf(list))
	}
	if _, err := s.Create(ctx, "globex", meter(t, callsDef)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "globex", meter(t, tokensDef)); err != nil {
		t.Errorf("globex cannot use a key acme has: %v", err)
	}
	all, err := s.ListAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keysOf(all["acme"]), []string{"tokens"}) || !slices.Equal(keysOf(all["globex"]), []string{"calls", "tokens"}) {
		t.Errorf("ListAll %v", all)
	}
	if got, _ := s.Get(ctx, "acme", "tokens"); got.Revision != acme.Revision {
		t.Errorf("acme's meter changed")
	}

	// An empty organization would select every organization's meters.
	if _, err := s.Get(ctx, "", "tokens"); err == nil {
		t.Error("Get without an organization succeeded")
	}
	if _, err := s.List(ctx, ""); err == nil {
		t.Error("List without an organization succeeded")
	}
	if err := s.Delete(ctx, "", "tokens"); err == nil {
		t.Error("Delete without an organization succeeded")
	}
	if _, err := s.Create(ctx, "", meter(t, callsDef)); err == nil {
		t.Error("Create without an organization succeeded")
	}
	if _, _, err := s.Put(ctx, "", meter(t, callsDef)); err == nil {
		t.Error("Put without an organization succeeded")
	}
	if _, err := s.Get(ctx, "acme", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of an empty key: %v", err)
	}
}

func keysOf(ms []schemas.Meter) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Key)
	}
	return out
}

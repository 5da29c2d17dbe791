package catalogstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-oss/tally/schemas"
)

// storedDocument is the subscription's current document as stored,
// without the termination overlaid.
func storedDocument(t *testing.T, s *Store, orgID, id string) schemas.Subscription {
	t.Helper()
	r, found, err := s.subscriptions.Current(context.Background(), orgID, id)
	if err != nil || !found {
		t.Fatalf("document of %s: found %v, %v", id, found, err)
	}
	sub, err := decode[schemas.Subscription](r)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// terminatedAt fails unless sub is terminated at want.
func terminatedAt(t *testing.T, what string, sub schemas.Subscription, want time.Time) {
	t.Helper()
	if sub.TerminatedAt == nil || !sub.TerminatedAt.Equal(want) {
		t.Errorf("%s: terminated_at %v, want %s", what, sub.TerminatedAt, want)
	}
}

// TestTerminationSurvivesStaleUpdate: a termination that lands between an
// update's read and its write (here: made inside the update's change
// func, before the update writes) is not undone by the update's stale
// copy. The update's own change still takes effect.
func TestTerminationSurvivesStaleUpdate(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.CreateSubscription(ctx, "acme", subscription("sub_1", "cus_1", "pro")); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 15, 10, 30, 0, 123456789, time.UTC)
	var answered schemas.Subscription
	updated, err := s.UpdateSubscription(ctx, "acme", "sub_1", func(sub *schemas.Subscription) error {
		if sub.TerminatedAt != nil {
			t.Errorf("the update read a terminated subscription: %v", sub.TerminatedAt)
		}
		var err error
		answered, err = s.TerminateSubscription(ctx, "acme", "sub_1", at) // the racing DELETE
		sub.Name = "renamed"
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	terminatedAt(t, "DELETE's answer", answered, at)
	if updated.Name != "renamed" || updated.TerminatedAt != nil {
		t.Errorf("the update answered %+v (it ran before the termination)", updated)
	}
	// The stale copy is the current document, and it has no termination:
	// only the overlay keeps the subscription terminated.
	if doc := storedDocument(t, s, "acme", "sub_1"); doc.TerminatedAt != nil || doc.Name != "renamed" {
		t.Fatalf("the scenario did not happen: stored document %+v", doc)
	}
	got, err := s.GetSubscription(ctx, "acme", "sub_1")
	if err != nil {
		t.Fatal(err)
	}
	terminatedAt(t, "Get after the stale update", got, at)
	if got.Name != "renamed" || got.StatusAt(at) != schemas.StatusTerminated {
		t.Errorf("Get: %+v", got)
	}
	list, err := s.ListSubscriptions(ctx, "acme", SubscriptionFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	terminatedAt(t, "List after the stale update", list[0], at)

	// A later update sees the termination and cannot clear it.
	if _, err := s.UpdateSubscription(ctx, "acme", "sub_1", func(sub *schemas.Subscription) error {
		terminatedAt(t, "what the change func sees", *sub, at)
		sub.TerminatedAt = nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetSubscription(ctx, "acme", "sub_1")
	if err != nil {
		t.Fatal(err)
	}
	terminatedAt(t, "Get after an update that cleared terminated_at", got, at)
	terminatedAt(t, "the document written by that update", storedDocument(t, s, "acme", "sub_1"), at)

	// A retried termination keeps the first time.
	again, err := s.TerminateSubscription(ctx, "acme", "sub_1", at.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	terminatedAt(t, "a second termination", again, at)
}

// TestUpdateCannotTerminate: only TerminateSubscription terminates; a
// change func that sets terminated_at changes nothing of it.
func TestUpdateCannotTerminate(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.CreateSubscription(ctx, "acme", subscription("sub_1", "cus_1", "pro")); err != nil {
		t.Fatal(err)
	}
	updated, err := s.UpdateSubscription(ctx, "acme", "sub_1", func(sub *schemas.Subscription) error {
		sub.TerminatedAt = &jan1
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSubscription(ctx, "acme", "sub_1")
	if err != nil {
		t.Fatal(err)
	}
	if updated.TerminatedAt != nil || got.TerminatedAt != nil {
		t.Errorf("an update terminated: answered %v, stored %v", updated.TerminatedAt, got.TerminatedAt)
	}
}

// TestRacingTerminationsKeepEarliest: terminations that raced (both read
// an unterminated subscription, both inserted) converge on the earliest
// time, in every read and after merges; concurrent calls all see one time.
func TestRacingTerminationsKeepEarliest(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	created, err := s.CreateSubscription(ctx, "acme", subscription("sub_1", "cus_1", "pro"))
	if err != nil {
		t.Fatal(err)
	}
	revision := revisionOf(t, s.subscriptions, "acme", "sub_1")
	early := time.Date(2026, 3, 15, 10, 30, 0, 5, time.UTC)
	// What two racing TerminateSubscription calls insert, the later time
	// first.
	for _, at := range []time.Time{early.Add(time.Second), early, early.Add(time.Millisecond)} {
		if err := s.insertTermination(ctx, "acme", "sub_1", revision, at); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		got, err := s.GetSubscription(ctx, "acme", "sub_1")
		if err != nil {
			t.Fatal(err)
		}
		terminatedAt(t, "Get "+when, got, early)
		sameJSON(t, "the rest of the subscription "+when, got, func() schemas.Subscription { c := created; c.TerminatedAt = &early; return c }())
		list, err := s.ListSubscriptions(ctx, "acme", SubscriptionFilter{CustomerID: "cus_1"})
		if err != nil || len(list) != 1 {
			t.Fatalf("list %s: %+v, %v", when, list, err)
		}
		terminatedAt(t, "List "+when, list[0], early)
		again, err := s.TerminateSubscription(ctx, "acme", "sub_1", early.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		terminatedAt(t, "Terminate "+when, again, early)
	}
	check("before merges")
	if err := s.conn.Exec(ctx, "OPTIMIZE TABLE "+subscriptionTerminationsTable+" FINAL"); err != nil {
		t.Fatal(err)
	}
	var rows uint64
	var ns int64
	if err := s.conn.QueryRow(ctx, "SELECT count(), min(terminated_at) FROM "+subscriptionTerminationsTable).Scan(&rows, &ns); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || ns != early.UnixNano() {
		t.Errorf("after a merge: %d rows, earliest %d; want the one row of %d", rows, ns, early.UnixNano())
	}
	check("after merges")

	// Concurrent terminations of one subscription: every answer and the
	// stored termination are one of the times, the stored one the
	// earliest answered.
	if _, err := s.CreateSubscription(ctx, "acme", subscription("sub_2", "cus_1", "pro")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	answers := make([]time.Time, 8)
	for i := range answers {
		wg.Go(func() {
			sub, err := s.TerminateSubscription(ctx, "acme", "sub_2", early.Add(time.Duration(len(answers)-i)*time.Second))
			if err != nil || sub.TerminatedAt == nil {
				t.Errorf("terminate %d: %+v, %v", i, sub, err)
				return
			}
			answers[i] = *sub.TerminatedAt
		})
	}
	wg.Wait()
	got, err := s.GetSubscription(ctx, "acme", "sub_2")
	if err != nil || got.TerminatedAt == nil {
		t.Fatalf("Get: %+v, %v", got, err)
	}
	for i, a := range answers {
		if a.Before(*got.TerminatedAt) {
			t.Errorf("terminate %d answered %s, before the stored %s", i, a, got.TerminatedAt)
		}
	}
	if !slices.ContainsFunc(answers, got.TerminatedAt.Equal) {
		t.Errorf("stored %s, answered %v", got.TerminatedAt, answers)
	}
}

// TestListShowsTerminations: every listed subscription carries its own
// termination, on every page and under filters.
func TestListShowsTerminations(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	want := map[string]time.Time{}
	for i := range 9 {
		id := fmt.Sprintf("sub_%d", i)
		if _, err := s.CreateSubscription(ctx, "acme", subscription(id, fmt.Sprintf("cus_%d", i%2), "pro")); err != nil {
			t.Fatal(err)
		}
		if i%3 != 0 {
			at := jan1.Add(time.Duration(i) * time.Hour)
			if _, err := s.TerminateSubscription(ctx, "acme", id, at); err != nil {
				t.Fatal(err)
			}
			want[id] = at
		}
	}
	for _, f := range []SubscriptionFilter{{}, {CustomerID: "cus_1"}, {Limit: 2, After: "sub_3"}, {PlanCode: "pro", Limit: 4}} {
		list, err := s.ListSubscriptions(ctx, "acme", f)
		if err != nil || len(list) == 0 {
			t.Fatalf("%+v: %d, %v", f, len(list), err)
		}
		for _, sub := range list {
			at, terminated := want[sub.ExternalID]
			switch {
			case terminated:
				terminatedAt(t, fmt.Sprintf("%+v: %s", f, sub.ExternalID), sub, at)
			case sub.TerminatedAt != nil:
				t.Errorf("%+v: %s terminated at %s, never terminated", f, sub.ExternalID, sub.TerminatedAt)
			}
		}
	}
	if list, err := s.ListSubscriptions(ctx, "acme", SubscriptionFilter{CustomerID: "nobody"}); err != nil || list == nil || len(list) != 0 {
		t.Errorf("an empty list: %#v, %v", list, err)
	}
}

// TestTerminationsOfManyIDs: the terminations of a list too long for one
// query are read in several, ids of any characters bound exactly.
func TestTerminationsOfManyIDs(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	var ids []string
	want := map[terminationKey]time.Time{}
	for i := range 700 {
		id := fmt.Sprintf("%04d%s", i, strings.Repeat(`'\`, schemas.MaxSubscriptionIDLen/2-2))
		ids = append(ids, id)
		if i%97 == 0 {
			at := jan1.Add(time.Duration(i) * time.Minute).UTC()
			if err := s.insertTermination(ctx, "acme", id, uint64(i+1), at); err != nil {
				t.Fatal(err)
			}
			want[terminationKey{id, uint64(i + 1)}] = at
		}
	}
	if n := len(ids) * quotedSize(ids[0]) / maxTerminationIDBytes; n < 2 {
		t.Fatalf("the ids fit %d queries; the test wants several", n+1)
	}
	got, err := s.terminations(ctx, "acme", ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%d terminations, want %d", len(got), len(want))
	}
	for k, at := range want {
		if !got[k].Equal(at) {
			t.Errorf("%.8s revision %d: %s, want %s", k.id, k.revision, got[k], at)
		}
	}
	if other, err := s.terminations(ctx, "globex", ids); err != nil || len(other) != 0 {
		t.Errorf("another organization reads %d terminations, %v", len(other), err)
	}
}

// TestTerminationOfRevision: a termination belongs to the revision it was
// made on; a subscription whose key is created again is not terminated.
func TestTerminationOfRevision(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.CreateSubscription(ctx, "acme", subscription("sub_1", "cus_1", "pro")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TerminateSubscription(ctx, "acme", "sub_1", jan1); err != nil {
		t.Fatal(err)
	}
	if err := s.remove(ctx, s.subscriptions, "acme", "sub_1"); err != nil { // no API deletes subscriptions yet
		t.Fatal(err)
	}
	if _, err := s.CreateSubscription(ctx, "acme", subscription("sub_1", "cus_1", "pro")); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSubscription(ctx, "acme", "sub_1")
	if err != nil || got.TerminatedAt != nil {
		t.Errorf("the new revision: %+v, %v", got, err)
	}
	list, err := s.ListSubscriptions(ctx, "acme", SubscriptionFilter{})
	if err != nil || len(list) != 1 || list[0].TerminatedAt != nil {
		t.Errorf("list: %+v, %v", list, err)
	}
	at := jan1.Add(time.Hour)
	terminated, err := s.TerminateSubscription(ctx, "acme", "sub_1", at)
	if err != nil {
		t.Fatal(err)
	}
	terminatedAt(t, "the new revision's termination", terminated, at)
}

// TestTerminationInDocument: a termination stored in the document only
// (before terminations had their table) still counts, and a termination
// keeps it.
func TestTerminationInDocument(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	created, err := s.CreateSubscription(ctx, "acme", subscription("sub_1", "cus_1", "pro"))
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := s.subscriptions.Current(ctx, "acme", "sub_1")
	if err != nil {
		t.Fatal(err)
	}
	legacy := created
	at := jan1.UTC()
	legacy.TerminatedAt = &at
	if err := s.writeSubscription(ctx, "acme", legacy, r.Revision, s.begin(r)); err != nil {
		t.Fatal(err)
	}
	again, err := s.TerminateSubscription(ctx, "acme", "sub_1", at.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	terminatedAt(t, "Terminate", again, at)
	got, err := s.GetSubscription(ctx, "acme", "sub_1")
	if err != nil {
		t.Fatal(err)
	}
	terminatedAt(t, "Get", got, at)
}

// TestTerminationsIsolated: one organization's termination of an id
// terminates nothing of another organization's subscription of that id.
func TestTerminationsIsolated(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, org := range []string{"a", "b"} {
		if _, err := s.CreateSubscription(ctx, org, subscription("sub", "cus", "pro")); err != nil {
			t.Fatal(err)
		}
	}
	// The same revision in both, as two organizations' keys may have.
	if err := s.insertTermination(ctx, "b", "sub", revisionOf(t, s.subscriptions, "a", "sub"), jan1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TerminateSubscription(ctx, "b", "sub", jan1); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSubscription(ctx, "a", "sub")
	if err != nil || got.TerminatedAt != nil {
		t.Errorf("a's subscription: %+v, %v", got, err)
	}
	list, err := s.ListSubscriptions(ctx, "a", SubscriptionFilter{})
	if err != nil || len(list) != 1 || list[0].TerminatedAt != nil {
		t.Errorf("a's list: %+v, %v", list, err)
	}
	if _, err := s.UpdateSubscription(ctx, "a", "sub", func(sub *schemas.Subscription) error {
		if sub.TerminatedAt != nil {
			t.Errorf("a's update sees b's termination")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.insertTermination(ctx, "", "sub", 1, jan1); err == nil {
		t.Error("a termination without an organization was stored")
	}
	if _, err := s.terminations(ctx, "", []string{"sub"}); err == nil {
		t.Error("terminations read without an organization")
	}
}

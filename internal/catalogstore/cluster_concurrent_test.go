package catalogstore

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/testenv"
)

// TestClusterConcurrentCatalogWrites (review 8a, F3): on a cluster every
// insert is a quorum insert, and ClickHouse 18.16 refuses one into a table
// at once (code 286) while another waits for its quorum. Concurrent writes
// of one organization into each catalog table (documents, terminations,
// idempotency keys) must all succeed, as on one server: every insert
// retries transient failures within its context.
func TestClusterConcurrentCatalogWrites(t *testing.T) {
	ctx := t.Context()
	pool := testenv.NewMigratedClusterDatabase(t).Open(t, 0, 16)
	s := New(pool)
	const n = 8
	at := time.Date(2026, 3, 15, 10, 30, 0, 0, time.UTC)
	for _, step := range []struct {
		name string
		run  func(ctx context.Context, i int) error
	}{
		{"create subscription", func(ctx context.Context, i int) error {
			_, err := s.CreateSubscription(ctx, "acme", subscription(fmt.Sprintf("sub_%d", i), "cus_1", "pro"))
			return err
		}},
		{"terminate subscription", func(ctx context.Context, i int) error {
			_, err := s.TerminateSubscription(ctx, "acme", fmt.Sprintf("sub_%d", i), at)
			return err
		}},
		{"save idempotent response", func(ctx context.Context, i int) error {
			return s.SaveIdempotent(ctx, "acme", "scope", fmt.Sprintf("key_%d", i), "h", 200, []byte("ok"))
		}},
	} {
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				errs[i] = step.run(ctx, i)
			})
		}
		close(start)
		wg.Wait()
		var failed []error
		for _, err := range errs {
			if err != nil {
				failed = append(failed, err)
			}
		}
		if len(failed) > 0 {
			t.Fatalf("%s: %d of %d concurrent writes failed (first: %v)", step.name, len(failed), n, failed[0])
		}
	}
	subs, err := s.ListSubscriptions(ctx, "acme", SubscriptionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range subs {
		if sub.TerminatedAt == nil || !sub.TerminatedAt.Equal(at) {
			t.Errorf("subscription %s: terminated at %v, want %v", sub.ExternalID, sub.TerminatedAt, at)
		}
	}
	if len(subs) != n {
		t.Errorf("%d subscriptions listed, want %d", len(subs), n)
	}
}

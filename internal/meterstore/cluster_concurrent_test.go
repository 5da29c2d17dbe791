package meterstore

import (
	"fmt"
	"testing"

	"github.com/tally-oss/tally/internal/testenv"
)

// TestClusterConcurrentCatalogWrites (review 8a, F3): ClickHouse 18.16
// runs one quorum insert per table at a time (a synchronous Distributed
// insert sends a block to every shard) and refuses the others at once
// (code 286), and every cluster connection sends insert_quorum, so
// concurrent catalog writes of one organization (a customer sync creating
// meters in parallel) meet each other's quorum. They must all succeed, as
// they do on one server: catalog inserts retry transient failures
// (chclient.RetryTransient) within the request's context.
func TestClusterConcurrentCatalogWrites(t *testing.T) {
	ctx := t.Context()
	pool := testenv.NewMigratedClusterDatabase(t).Open(t, 0, 16)
	s := New(pool)
	const n = 16
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		go func() {
			<-start
			def := fmt.Sprintf(`{"key": "calls_%d", "event_type": "api", "aggregation": "COUNT"}`, i)
			_, err := s.Create(ctx, "acme", meter(t, def))
			errs <- err
		}()
	}
	close(start)
	var failed []error
	for range n {
		if err := <-errs; err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		t.Fatalf("%d of %d concurrent meter creates failed (first: %v)", len(failed), n, failed[0])
	}
	list, err := s.List(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n {
		t.Errorf("List returned %d meters after %d creates", len(list), n)
	}
}

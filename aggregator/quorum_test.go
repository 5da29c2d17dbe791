package aggregator

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// TestQuorumQueue: inserts are not serialized until a 286 (the previous
// quorum insert into the table and shard still awaits its quorum) shows
// that they are quorum inserts; then one table's inserts take turns, and
// other tables' do not wait for them.
func TestQuorumQueue(t *testing.T) {
	queued := fmt.Errorf("insert 83 rows into readings: %w", &clickhouse.Exception{Code: 286, Message: "Quorum for previous write has not been satisfied yet"})
	down := fmt.Errorf("insert 83 rows into readings: %w", &clickhouse.Exception{Code: 210, Message: "Connection refused"})
	done, cancel := context.WithCancel(context.Background())
	cancel()
	ctx := context.Background()

	var q quorumQueue
	first, err := q.acquire(ctx, "readings")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.acquire(done, "readings"); err != nil {
		t.Fatalf("inserts wait for each other before any 286: %v", err)
	}
	first()
	for _, err := range []error{nil, down, errors.New("code: 286")} {
		if q.observe(err); q.on.Load() {
			t.Fatalf("queue enabled by %v", err)
		}
	}

	q.observe(queued)
	release, err := q.acquire(ctx, "readings")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.acquire(done, "readings"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a second insert into readings did not wait for the first: %v", err)
	}
	other, err := q.acquire(done, "events")
	if err != nil {
		t.Fatalf("an insert into events waited for one into readings: %v", err)
	}
	other()
	release()
	again, err := q.acquire(done, "readings")
	if err != nil {
		t.Fatalf("readings still taken after the release: %v", err)
	}
	again()
}

package aggregator

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouse 18.16 runs quorum inserts (insert_quorum, which the
// aggregator sends on a cluster) one at a time per table and shard: an
// insert that arrives while the previous one awaits its quorum is refused
// with code 286 (UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE). The partitions of
// one process would refuse each other most of the time, and each refused
// insert has already written its block to the shards that took it (a
// Distributed insert splits it), which the retry writes again: work for
// nothing, and the retry's backoff leaves the partition idle after its
// turn came. So once a 286 shows that inserts are quorum inserts, this
// process sends its inserts into one table one at a time (quorumQueue),
// and the partitions queue here, where waiting costs nothing. Other
// processes' inserts can still collide; those are retried with the usual
// backoff. On one server, or with parallel quorum inserts (ClickHouse
// 20.10 and later), no 286 ever comes and nothing is serialized.

// quorumQueue serializes inserts per table once enabled.
type quorumQueue struct {
	on     atomic.Bool
	mu     sync.Mutex
	tables map[string]chan struct{}
}

// observe enables the queue when err is a 286.
func (q *quorumQueue) observe(err error) {
	if !q.on.Load() && quorumQueued(err) {
		q.on.Store(true)
	}
}

// acquire waits for table's turn when the queue is enabled and returns
// the release; it returns ctx's error if ctx ends first.
func (q *quorumQueue) acquire(ctx context.Context, table string) (release func(), err error) {
	if !q.on.Load() {
		return func() {}, nil
	}
	q.mu.Lock()
	if q.tables == nil {
		q.tables = map[string]chan struct{}{}
	}
	turn, ok := q.tables[table]
	if !ok {
		turn = make(chan struct{}, 1)
		q.tables[table] = turn
	}
	q.mu.Unlock()
	select {
	case turn <- struct{}{}: // a free turn is taken even if ctx just ended
		return func() { <-turn }, nil
	default:
	}
	select {
	case turn <- struct{}{}:
		return func() { <-turn }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// quorumQueued reports ClickHouse's code 286: a quorum insert refused
// while the previous one into its table and shard awaits its quorum.
func quorumQueued(err error) bool {
	var exc *clickhouse.Exception
	return err != nil && errors.As(err, &exc) && exc.Code == 286
}

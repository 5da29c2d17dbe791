package main

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// benchWorkers runs n workers for d, each calling its own op (made by
// newOp, so a worker may keep buffers of its own) until the deadline, the
// context's end or op's first error, and waiting for each call as a
// client waits for its answer. op returns how many events its call moved.
// It returns the events moved, the sorted latencies of the calls, the
// elapsed time and the first error.
func benchWorkers(ctx context.Context, n int, d time.Duration, newOp func() func() (int, error)) (events int64, lat []time.Duration, elapsed time.Duration, first error) {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for range n {
		op := newOp()
		wg.Go(func() {
			var (
				mine  []time.Duration
				moved int64
				err   error
			)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t := time.Now()
				var k int
				if k, err = op(); err != nil {
					break
				}
				mine = append(mine, time.Since(t))
				moved += int64(k)
			}
			mu.Lock()
			defer mu.Unlock()
			events += moved
			lat = append(lat, mine...)
			first = cmp.Or(first, err)
		})
	}
	wg.Wait()
	elapsed = time.Since(start)
	slices.Sort(lat)
	return events, lat, elapsed, first
}

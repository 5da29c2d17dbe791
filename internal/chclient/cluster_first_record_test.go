package chclient_test

import (
	"sync"
	"testing"

	"github.com/tally-oss/tally/internal/chclient"
)

// review 8b G9: at the first start of a migrated cluster every service
// (Kubernetes starts them together) finds no accepted layout and records
// one; recordLayout has no retry, and 18.16 refuses concurrent quorum
// inserts into one table (286), so all but one Open fail at the first
// deploy (crash, restart, fine the second time). Catalog writes got
// RetryTransient for the same reason (F3); this one did not.
func TestClusterConcurrentFirstLayoutRecords(t *testing.T) {
	c, db := newClusterDatabase(t)
	ctx := t.Context()
	s0 := serverConn(t, c, 0, db)
	createClusterLayout(t, c, db, s0)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := c.config(i%len(c.addrs), db)
			conn, err := cfg.Open(ctx)
			if err == nil {
				conn.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	failed := 0
	var first error
	for _, err := range errs {
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d services opening at once on a fresh cluster failed (first: %v)", failed, n, first)
	}
	_ = chclient.ErrClusterUnfit
}

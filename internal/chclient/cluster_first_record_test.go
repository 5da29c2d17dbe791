package chclient_test

import (
	"fmt"
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
	for _, q := range []string{
		fmt.Sprintf(`CREATE TABLE %s.cluster_layout_local ON CLUSTER %s (cluster String, shards UInt32, weights Array(UInt32), recorded_at DateTime('UTC'))
		 ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/%s/cluster_layout', '{replica}', recorded_at) ORDER BY cluster`, db, c.name, db),
		fmt.Sprintf("CREATE TABLE %s.cluster_layout ON CLUSTER %s AS %s.cluster_layout_local ENGINE = Distributed(%s, %s, cluster_layout_local, cityHash64(cluster))",
			db, c.name, db, c.name, db),
	} {
		if err := s0.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
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

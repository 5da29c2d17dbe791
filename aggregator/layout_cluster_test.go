package aggregator

import (
	"strings"
	"testing"
	"time"
)

// TestClusterLayoutChangeHaltsConsumption: ClickHouse applies a changed
// remote_servers without a restart, so a running aggregator must notice a
// changed shard layout by itself, as it notices a changed partition count:
// a shard added sends customers to other shards, where a redelivered batch
// would store a second copy of their readings that FINAL, folding per
// shard, counts too. The test cluster keeps its two shards; what changes is
// the accepted layout (a row of cluster_layout recorded later, here 3
// shards), which makes the two differ just as an edited remote_servers
// would. The aggregator then stops consuming (readiness names both
// layouts, halted_partitions{reason="cluster_layout_changed"} is set, a
// record produced afterwards is not committed) and resumes once the
// current layout is accepted again, counting that record once.
func TestClusterLayoutChangeHaltsConsumption(t *testing.T) {
	lt := startLayoutTest(t, false)
	e, r, cfg, conn, name := lt.e, lt.r, lt.cfg, lt.conn, lt.name
	e.waitFor("readiness 200 on the accepted layout", func() bool { code, _ := readyz(t, r); return code == 200 })

	// A layout accepted later than the recorded one, as an operator's
	// INSERT would record it.
	now := time.Now().UTC().Truncate(time.Second)
	acceptLayout(t, conn, name, 3, []uint32{1, 1, 1}, now.Add(time.Hour))

	e.waitFor("readiness to name both layouts", func() bool {
		code, body := readyz(t, r)
		return code == 503 && strings.Contains(body, "2 shards (weights 1, 1)") && strings.Contains(body, "3 shards (weights 1, 1, 1)")
	})
	e.waitFor("the partition halted for the layout", func() bool {
		return metricValue(t, r.reg, "tally_aggregator_halted_partitions", map[string]string{"reason": "cluster_layout_changed"}) == 1
	})
	_, body := readyz(t, r)
	t.Logf("readiness while halted: %s", body)
	if got := metricValue(t, r.reg, "tally_aggregator_halted_partitions", map[string]string{"reason": "partition_count_changed"}); got != 0 {
		t.Errorf("halted_partitions{partition_count_changed} = %v, want 0 (the layout halted it)", got)
	}

	// A record produced now stays unconsumed: the aggregator sees it in
	// the broker (its lag, read on the guard's tick) but commits nothing.
	e.produce(event("c1", "e2", "api", t0, `{"n":10}`))
	e.waitFor("the halted member to see the new record as lag", func() bool {
		return metricValue(t, r.reg, "tally_aggregator_consumer_lag_messages", map[string]string{"partition": "0"}) == 1
	})
	if got := e.committed(cfg.GroupID); got != 1 {
		t.Errorf("committed offset %d after the layout changed, want 1 (nothing committed while halted)", got)
	}
	if n := len(e.readings("calls")); n != 1 {
		t.Errorf("%d readings while halted, want 1 (e1's)", n)
	}

	// The current layout accepted again (remote_servers restored, or the
	// data re-sharded): consumption resumes by itself.
	acceptLayout(t, conn, name, 2, []uint32{1, 1}, now.Add(2*time.Hour))
	e.waitCommitted(cfg.GroupID)
	e.waitFor("readiness 200 again", func() bool { code, _ := readyz(t, r); return code == 200 })
	if got := metricValue(t, r.reg, "tally_aggregator_halted_partitions", map[string]string{"reason": "cluster_layout_changed"}); got != 0 {
		t.Errorf("halted_partitions{cluster_layout_changed} = %v after the layout was accepted again, want 0", got)
	}
	var events []string
	for _, rd := range e.readings("calls") {
		events = append(events, rd.EventID+"="+rd.Value)
	}
	if strings.Join(events, " ") != "e1=1 e2=10" {
		t.Errorf("readings %v, want e1=1 and e2=10, once each", events)
	}
}

package devstack

import (
	"context"
	"fmt"
	"testing"

	"github.com/segmentio/kafka-go"
)

// TestTrimThenRestartKeepsLogEnd: after a trim that deleted everything committed and a restart
// (clean, and after a kill), the aggregator's log-end check (ListOffsets)
// must see a log end at or after the group's committed offset, or every
// `tally all` restart halts partitions as log_truncated.
func TestTrimThenRestartKeepsLogEnd(t *testing.T) {
	for _, syncWrites := range []bool{false, true} {
		t.Run(fmt.Sprintf("SyncWrites=%v", syncWrites), func(t *testing.T) {
			const topic, group, total = "events", "g", 300
			opts := BrokerOptions{Dir: t.TempDir(), Port: freePort(t), SyncWrites: syncWrites}
			b := startBroker(t, opts)
			createTopic(t, b.Addrs(), topic, 1)
			produce(t, b.Addrs(), topic, total)
			consume(t, b.Addrs(), topic, group, total)
			b.trimOnce(context.Background(), topic, group)
			check := func(when string) {
				tr := &kafka.Transport{}
				defer tr.CloseIdleConnections()
				client := &kafka.Client{Addr: kafka.TCP(b.Addrs()...), Transport: tr}
				res, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{
					Topics: map[string][]kafka.OffsetRequest{topic: {kafka.FirstOffsetOf(0), kafka.LastOffsetOf(0)}}})
				if err != nil {
					t.Fatal(err)
				}
				po := res.Topics[topic][0]
				c := committed(b, topic, group)[0]
				t.Logf("%s: first %d last %d committed %d err %v", when, po.FirstOffset, po.LastOffset, c, po.Error)
				if po.LastOffset < c {
					t.Errorf("%s: the log ends at %d, before the committed offset %d: the aggregator halts the partition as log_truncated", when, po.LastOffset, c)
				}
				if po.FirstOffset > c {
					t.Errorf("%s: the log starts at %d, after the committed offset %d: offset_out_of_range", when, po.FirstOffset, c)
				}
			}
			check("after trim")
			b.Close()
			b = startBroker(t, opts)
			check("after restart")
			produce(t, b.Addrs(), topic, 10)
			b.trimOnce(context.Background(), topic, group)
			b.Close()
			b = startBroker(t, opts)
			check("after second restart")
		})
	}
}

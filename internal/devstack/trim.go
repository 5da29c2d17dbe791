package devstack

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Outcomes of a trim round, the values of the outcome label.
const (
	trimNothing      = "nothing_to_trim"
	trimSyncFailed   = "sync_failed"
	trimDeleteFailed = "delete_failed"
	trimDone         = "trimmed"
)

type trimMetrics struct {
	rounds        *prometheus.CounterVec
	roundSeconds  prometheus.Histogram
	syncSeconds   prometheus.Histogram
	deletedRecord prometheus.Counter
}

func newTrimMetrics(reg prometheus.Registerer) *trimMetrics {
	f := promauto.With(reg)
	m := &trimMetrics{
		rounds: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_devstack_trim_rounds_total",
			Help: "Rounds of deleting the event records the aggregator committed from the embedded broker, by outcome (sync_failed: ClickHouse's data could not be made durable, nothing was deleted).",
		}, []string{"outcome"}),
		roundSeconds: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "tally_devstack_trim_duration_seconds",
			Help:    "Time a trim round took, sync included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
		syncSeconds: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "tally_devstack_trim_sync_duration_seconds",
			Help:    "Time making ClickHouse's data durable took before a trim (syncfs of its data directory).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
		deletedRecord: f.NewCounter(prometheus.CounterOpts{
			Name: "tally_devstack_trimmed_records_total",
			Help: "Event records deleted from the embedded broker after the aggregator committed them.",
		}),
	}
	for _, o := range []string{trimNothing, trimSyncFailed, trimDeleteFailed, trimDone} {
		m.rounds.WithLabelValues(o)
	}
	return m
}

// TrimCommitted deletes, every interval, the records of topic that group
// has committed, and applies time and size retention. The aggregator
// commits an offset only after ClickHouse acknowledged everything before
// it, so those records are no longer needed once ClickHouse's copy is
// durable: without trimming, the broker's memory grows with every event
// ever ingested.
func (b *Broker) TrimCommitted(ctx context.Context, topic, group string, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		b.trimOnce(ctx, topic, group)
	}
}

func (b *Broker) trimOnce(ctx context.Context, topic, group string) {
	began := time.Now()
	outcome := b.trimRound(ctx, topic, group)
	b.metrics.rounds.WithLabelValues(outcome).Inc()
	b.metrics.roundSeconds.Observe(time.Since(began).Seconds())
}

// trimRound runs the three steps in this order, and the order is the
// guarantee. An insert into ClickHouse 18.16 returns once the part is in
// the page cache (it never fsyncs), and the aggregator commits right after;
// so a committed offset says the data reached ClickHouse, not the disk.
//  1. Read the offsets the group has committed. Every insert they cover
//     returned before this read.
//  2. BeforeTrim makes ClickHouse's data durable: syncfs writes out every
//     page dirtied before the call, which includes those inserts.
//  3. Delete up to the offsets read in step 1 (less the last committed
//     record, which keeps the partition's offsets across a restart), and
//     no further. An offset
//     committed during step 2 may cover an insert the sync missed; it is
//     trimmed in a later round, after a sync that began after it.
//
// Reading the offsets after the sync (or deleting past them) would let a
// power cut take the page-cache copy while the broker's copy was gone. A
// failed sync deletes nothing; the next round tries again.
func (b *Broker) trimRound(ctx context.Context, topic, group string) string {
	b.cluster.ApplyRetention()

	// 1. What the group has committed beyond what is already deleted.
	upTo := map[int32]int64{}
	var records int64
	if info := b.cluster.GroupInfo(group); info != nil {
		for partition, commit := range info.Commits[topic] {
			// The last committed record stays: kfake rebuilds a
			// partition's offsets from the records it finds at start,
			// so a partition trimmed empty came back at offset 0 below
			// the group's commit, and the aggregator then skipped (or
			// halted on) every record written up to the old commit.
			keep := commit.Offset - 1
			p := b.cluster.PartitionInfo(topic, partition)
			if p == nil || keep <= p.LogStartOffset {
				continue
			}
			upTo[partition] = keep
			records += keep - p.LogStartOffset
		}
	}
	if len(upTo) == 0 {
		return trimNothing
	}

	// 2. Make what those offsets cover durable.
	if b.opts.BeforeTrim != nil {
		began := time.Now()
		err := b.opts.BeforeTrim(ctx)
		b.metrics.syncSeconds.Observe(time.Since(began).Seconds())
		if err != nil {
			b.opts.Logger.Error("trim skipped: could not make ClickHouse's data durable; committed records stay in the broker", "topic", topic, "err", err)
			return trimSyncFailed
		}
	}

	// 3. Delete up to the offsets of step 1.
	outcome := trimDone
	for partition, offset := range upTo {
		if err := b.cluster.DeleteRecords(topic, partition, offset); err != nil {
			b.opts.Logger.Warn("trim committed records", "topic", topic, "partition", partition, "err", err)
			outcome = trimDeleteFailed
		}
	}
	if outcome == trimDone {
		b.metrics.deletedRecord.Add(float64(records))
	}
	return outcome
}

// Package devstack runs what `tally all` needs besides Tally itself when no
// external services are configured: an in-process Kafka-protocol broker
// (franz-go's kfake) persisted under the data directory, and a private
// ClickHouse server (internal/chserver). Production runs real Kafka and
// ClickHouse; this is the one-command local run.
//
// Durability. The broker is the only other copy of what ClickHouse 18.16
// holds in its page cache (it never fsyncs inserted parts), so:
//   - with SyncWrites (on in `tally all`) every produced batch and every
//     committed offset is fsynced before it is acknowledged;
//   - a trim deletes only records whose ClickHouse parts were synced first
//     (BeforeTrim; the order is explained in trim.go), and a failed sync
//     deletes nothing (tally_devstack_trim_rounds_total{outcome="sync_failed"});
//   - after a power cut, RewindToLogStart makes the group re-read every
//     record the broker still holds, which covers what was committed but
//     not yet synced (powerloss.go tells a power cut from a kill -9 by the
//     boot id).
//
// Tested: the order (sync before delete, never past the offsets read
// before the sync), the skipped round, the rewind and its bookkeeping, and
// kill -9 of the broker process. A power cut itself cannot be staged in a
// test. Limits: a trim round every 30 s in `tally all`, so up to 30 s of
// committed events (plus a round's duration) sit in the broker after
// ClickHouse has them; merges of parts after a sync rely on ClickHouse
// keeping the merged-away parts for old_parts_lifetime (480 s) while the
// kernel writes the new part back (about 30 s by default); kfake persists
// the log start only at a clean stop, so after a crash trimmed records of a
// partly trimmed segment come back (a superset: replays are idempotent).
//
// Memory. A backlog (the aggregator stopped or slow) stays on disk: kfake
// keeps an index entry per record batch in memory and reads records from
// its segment files when they are fetched (TestBacklogStaysOnDisk). What it
// holds besides is each fetch response in flight, built whole: up to the
// consumer's fetch size per partition (-aggregator.fetch-max-bytes).
// Measured in `tally all` with ClickHouse stopped: a backlog of 3M events
// (82 MB on disk) left RSS flat at 135 MiB (peak 148 MiB while ingesting).
package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tally-oss/tally/internal/kafkaclient"
)

// BrokerOptions configures the embedded broker.
type BrokerOptions struct {
	Dir  string // persisted topics, records and committed offsets
	Port int    // the first broker's port; 0 picks free ones
	// Brokers is the number of brokers (0 means 1), on ports Port,
	// Port+1, ... when Port is set. Several brokers spread partition
	// leadership, so clients talk to each of them as to a real cluster;
	// kfake still keeps one copy of each record and does not enforce
	// min.insync.replicas, so this is no test of Kafka's replication.
	Brokers int
	// SyncWrites fsyncs every produced batch before it is acknowledged, so
	// a 202 from ingest survives a power cut, not only a kill -9.
	SyncWrites bool
	// RetentionMs and RetentionBytes are broker-wide defaults for topics
	// without settings of their own (see TopicConfigs); 0 keeps kfake's.
	RetentionMs    int64
	RetentionBytes int64
	// BeforeTrim makes durable, before a trim deletes the broker's copy,
	// what the group committed: `tally all` syncs the private ClickHouse's
	// data directory. An error skips that trim round. nil: nothing to do.
	BeforeTrim func(ctx context.Context) error
	Logger     *slog.Logger
	// Registerer receives the trim metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
}

// Broker is the embedded Kafka-protocol broker.
type Broker struct {
	cluster *kfake.Cluster
	opts    BrokerOptions
	metrics *trimMetrics
}

// StartBroker starts the broker, reloading any state persisted in Dir.
func StartBroker(opts BrokerOptions) (*Broker, error) {
	configs := map[string]string{}
	if opts.RetentionMs > 0 {
		configs["log.retention.ms"] = strconv.FormatInt(opts.RetentionMs, 10)
	}
	if opts.RetentionBytes > 0 {
		configs["log.retention.bytes"] = strconv.FormatInt(opts.RetentionBytes, 10)
	}
	n := max(1, opts.Brokers)
	ports := make([]int, n)
	for i := range ports {
		if opts.Port != 0 {
			ports[i] = opts.Port + i
		}
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(n),
		kfake.Ports(ports...),
		kfake.DataDir(opts.Dir),
		kfake.BrokerConfigs(configs),
	}
	if opts.SyncWrites {
		kopts = append(kopts, kfake.SyncWrites())
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cluster, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka broker (%d broker(s) from port %d): %w", n, opts.Port, err)
	}
	return &Broker{cluster: cluster, opts: opts, metrics: newTrimMetrics(opts.Registerer)}, nil
}

// Addrs returns the listen addresses, one per broker.
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Close stops the broker, flushing its state to disk.
func (b *Broker) Close() { b.cluster.Close() }

// TopicConfigs are the settings of the topics `tally all` creates on the
// embedded broker. The event topic has no retention: an accepted event is
// kept until the aggregator has committed it (TrimCommitted deletes it
// then), however long ClickHouse is down; time or size retention would drop
// events that were acknowledged but never metered. Dead letters, which
// nothing consumes here, are bounded by retention.
func TopicConfigs(deadLetterRetention time.Duration, deadLetterBytes int64) kafkaclient.TopicConfigs {
	return kafkaclient.TopicConfigs{
		Events: map[string]string{"retention.ms": "-1", "retention.bytes": "-1"},
		DeadLetters: map[string]string{
			"retention.ms":    strconv.FormatInt(deadLetterRetention.Milliseconds(), 10),
			"retention.bytes": strconv.FormatInt(deadLetterBytes, 10),
		},
	}
}

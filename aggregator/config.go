package aggregator

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Defaults of the aggregator.* flags.
const (
	DefaultListenAddr = "127.0.0.1:8082"
	DefaultGroupID    = "tally-aggregator"
	// DefaultBatchSize is large enough that ClickHouse sees few, big inserts
	// (it prefers about one insert per second per table over many small
	// ones) and small enough that a batch of 1 KiB events stays in memory
	// comfortably.
	DefaultBatchSize = 10_000
	// DefaultBatchMaxBytes bounds a batch in bytes as well: 10,000 events
	// of 1 KiB fit, and a backlog of events near the largest size ingest
	// accepts (1 MiB) makes batches of 16 records instead of 10,000
	// (10 GiB).
	DefaultBatchMaxBytes = 16 << 20
	// DefaultBatchLinger bounds the latency a quiet partition adds: a batch
	// is cut this long after its first record even when it is not full.
	DefaultBatchLinger = 200 * time.Millisecond
	// DefaultStallTimeout is how long a partition with lag may go without a
	// commit before readiness fails (ClickHouse retried for minutes, a
	// stuck fetch).
	DefaultStallTimeout     = 2 * time.Minute
	DefaultRetryInitial     = 100 * time.Millisecond
	DefaultRetryMaxInterval = 30 * time.Second
	// DefaultFetchMaxBytes is the smallest allowed (the largest event
	// must fit): 1 MiB of ingest's compressed records is about 37,000
	// events, more than a batch, and every fetch in flight is held in
	// memory by the broker as well as here (the embedded broker of
	// `tally all` builds each response whole). Catching up a backlog of
	// 1.5M events, tally all peaked at 345 MiB with 1 MiB and 443 MiB
	// with 10 MiB, at the same CPU per event (12.4 and 12.3 us).
	DefaultFetchMaxBytes       = 1 << 20
	DefaultDrainTimeout        = 10 * time.Second
	DefaultSessionTimeout      = 30 * time.Second
	DefaultHeartbeatInterval   = 3 * time.Second
	DefaultRebalanceTimeout    = 30 * time.Second
	minFetchMaxBytes           = maxRecordBytes // the largest event ingest accepts must fit in one fetch
	maxBatchSize               = 1_000_000
	defaultPartitionQueueCap   = 1000
	defaultFetchMaxWait        = 500 * time.Millisecond
	defaultDeadLetterBatchWait = 5 * time.Millisecond
	// fetchErrorPause follows an error from a partition's Reader (see
	// fetchBatch): queued errors drain at 10 a second, so with the default
	// queue of 10 records a partition is back within a second of Kafka.
	fetchErrorPause = 100 * time.Millisecond
)

// maxRecordBytes is the largest record the memory bounds are computed for:
// ingest's default -ingest.kafka-batch-bytes and Kafka's default
// max.message.bytes.
const maxRecordBytes = 1 << 20

// Config holds the settings of the aggregator.
type Config struct {
	// ListenAddr serves /metrics, /healthz and /readyz.
	ListenAddr string
	// GroupID is the Kafka consumer group; every aggregator replica uses the
	// same one and the group spreads the partitions over them.
	GroupID string
	// BatchSize, BatchMaxBytes and BatchLinger cut a partition's records
	// into batches: at most BatchSize records and BatchMaxBytes bytes of
	// keys, values and headers, and no longer than BatchLinger after the
	// first one arrived.
	//
	// Memory per partition held is bounded by bytes: a batch (at most
	// BatchMaxBytes, plus the rows built from it, a small multiple), the
	// Reader's queue (queueCapacity records, at most FetchMaxBytes of
	// records up to maxRecordBytes) and the fetch being decoded (one
	// producer's record batch, decompressed: ingest's are at most
	// -ingest.kafka-batch-bytes, 1 MiB, before compression). With the
	// defaults about 16 + 1 + 1 MiB of records per partition, times the
	// partitions this member holds (at most the topic's partition count):
	// 6 partitions, about 110 MiB of records, where counts alone allowed
	// 1000 queued and 10,000 batched records of up to 1 MiB each per
	// partition.
	BatchSize     int
	BatchMaxBytes int
	BatchLinger   time.Duration
	// StallTimeout fails readiness for a partition with lag and no commit.
	StallTimeout time.Duration
	// RetryInitialInterval and RetryMaxInterval shape the exponential
	// backoff of ClickHouse and dead-letter retries, which go on until they
	// succeed or the batch is abandoned.
	RetryInitialInterval time.Duration
	RetryMaxInterval     time.Duration
	// FetchMaxBytes bounds one fetch response per partition, and the
	// bytes of the partition's queue of fetched records.
	FetchMaxBytes int
	// DrainTimeout is how long shutdown lets an in-flight batch finish
	// before abandoning it uncommitted.
	DrainTimeout time.Duration
	// SessionTimeout, HeartbeatInterval and RebalanceTimeout tune the
	// consumer group membership.
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
	RebalanceTimeout  time.Duration
	// Backfill recomputes the readings of a new meter revision from the
	// stored events, so that events metered before the meter existed count.
	Backfill bool
}

// RegisterFlags registers the aggregator.* flags with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ListenAddr, "aggregator.listen-addr", DefaultListenAddr, "address of the aggregator's /metrics, /healthz, /readyz")
	fs.StringVar(&c.GroupID, "aggregator.group-id", DefaultGroupID, "Kafka consumer group shared by all aggregator replicas")
	fs.IntVar(&c.BatchSize, "aggregator.batch-size", DefaultBatchSize, "most records of one partition written to ClickHouse in one batch")
	fs.IntVar(&c.BatchMaxBytes, "aggregator.batch-max-bytes", DefaultBatchMaxBytes, "most bytes of records (keys, values, headers) of one partition in one batch; at least 1 MiB, the largest event")
	fs.DurationVar(&c.BatchLinger, "aggregator.batch-linger", DefaultBatchLinger, "how long a batch waits for more records after its first one")
	fs.DurationVar(&c.StallTimeout, "aggregator.stall-timeout", DefaultStallTimeout, "readiness fails when a partition with lag has not committed for this long")
	fs.DurationVar(&c.RetryInitialInterval, "aggregator.retry-initial-interval", DefaultRetryInitial, "first wait before retrying a failed ClickHouse or dead-letter write")
	fs.DurationVar(&c.RetryMaxInterval, "aggregator.retry-max-interval", DefaultRetryMaxInterval, "longest wait between retries (retries never give up)")
	fs.IntVar(&c.FetchMaxBytes, "aggregator.fetch-max-bytes", DefaultFetchMaxBytes, "largest Kafka fetch response per partition, in bytes; also bounds the records queued per partition (one per MiB)")
	fs.DurationVar(&c.DrainTimeout, "aggregator.drain-timeout", DefaultDrainTimeout, "at shutdown, how long an in-flight batch may finish before it is abandoned uncommitted")
	fs.DurationVar(&c.SessionTimeout, "aggregator.session-timeout", DefaultSessionTimeout, "consumer group session timeout: a silent member loses its partitions after this (brokers accept 6s to 30m by default)")
	fs.DurationVar(&c.HeartbeatInterval, "aggregator.heartbeat-interval", DefaultHeartbeatInterval, "consumer group heartbeat interval; also how fast a rebalance is noticed")
	fs.DurationVar(&c.RebalanceTimeout, "aggregator.rebalance-timeout", DefaultRebalanceTimeout, "how long the group coordinator waits for members to rejoin in a rebalance")
	fs.BoolVar(&c.Backfill, "aggregator.backfill", true, "compute a new meter's readings from the events stored before it existed")
}

// DefaultConfig returns the flag defaults, for tests and embedding.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	return c
}

// Validate reports every problem with the settings.
func (c *Config) Validate() error {
	var errs []error
	if c.ListenAddr == "" {
		errs = append(errs, errors.New("aggregator.listen-addr is required"))
	}
	if c.GroupID == "" {
		errs = append(errs, errors.New("aggregator.group-id is required"))
	}
	if c.BatchSize < 1 || c.BatchSize > maxBatchSize {
		errs = append(errs, fmt.Errorf("aggregator.batch-size must be between 1 and %d, got %d", maxBatchSize, c.BatchSize))
	}
	if c.BatchMaxBytes < maxRecordBytes {
		errs = append(errs, fmt.Errorf("aggregator.batch-max-bytes must be at least %d (the largest event), got %d", maxRecordBytes, c.BatchMaxBytes))
	}
	if c.BatchLinger <= 0 {
		errs = append(errs, fmt.Errorf("aggregator.batch-linger must be positive, got %s", c.BatchLinger))
	}
	if c.StallTimeout <= c.BatchLinger {
		errs = append(errs, fmt.Errorf("aggregator.stall-timeout must be longer than aggregator.batch-linger, got %s", c.StallTimeout))
	}
	if c.RetryInitialInterval <= 0 || c.RetryMaxInterval < c.RetryInitialInterval {
		errs = append(errs, fmt.Errorf("aggregator.retry-initial-interval must be positive and at most aggregator.retry-max-interval, got %s and %s",
			c.RetryInitialInterval, c.RetryMaxInterval))
	}
	if c.FetchMaxBytes < minFetchMaxBytes {
		errs = append(errs, fmt.Errorf("aggregator.fetch-max-bytes must be at least %d (the largest event), got %d", minFetchMaxBytes, c.FetchMaxBytes))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("aggregator.drain-timeout must not be negative, got %s", c.DrainTimeout))
	}
	if c.HeartbeatInterval <= 0 || c.SessionTimeout < 2*c.HeartbeatInterval {
		// One lost heartbeat must not cost the session.
		errs = append(errs, fmt.Errorf("aggregator.heartbeat-interval must be positive and at most half of aggregator.session-timeout, got %s and %s",
			c.HeartbeatInterval, c.SessionTimeout))
	}
	if c.RebalanceTimeout <= 0 {
		errs = append(errs, fmt.Errorf("aggregator.rebalance-timeout must be positive, got %s", c.RebalanceTimeout))
	}
	return errors.Join(errs...)
}

// queueCapacity is the Reader's queue of one partition, in records: as many
// of the largest records as FetchMaxBytes holds, so that the queue is
// bounded in bytes too (consumer.go, readerConfig).
func (c *Config) queueCapacity() int {
	return max(1, min(c.FetchMaxBytes/maxRecordBytes, defaultPartitionQueueCap))
}

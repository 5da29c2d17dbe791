package ingest

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"time"

	"github.com/tally-oss/tally/internal/telemetry"
	"github.com/tally-oss/tally/schemas"
)

// Defaults of the ingest.* flags.
const (
	DefaultListenAddr   = "127.0.0.1:8080"
	DefaultMaxBodyBytes = 5 << 20
	DefaultMaxEvents    = 10_000
	// DefaultProduceTimeout bounds a request's wait for Kafka (publisher.go):
	// at most half of it for the partition's produce request under way,
	// and the rest for the attempts at its own batch (DefaultKafkaMaxAttempts,
	// each with an equal share of the time, and the backoff between them),
	// which end by the request's deadline. A request is answered only once
	// Kafka is done with its records (issue 6, defect 5). It stays below
	// telemetry.ShutdownTimeout so requests in flight at shutdown still get
	// their real answer.
	DefaultProduceTimeout = 10 * time.Second
	// DefaultKafkaMaxAttempts is how often the writer tries to produce a
	// batch (retriable errors and timeouts are retried).
	DefaultKafkaMaxAttempts = 3
	// DefaultKafkaLinger is ingest.kafka-batch-timeout's default: an idle
	// partition's records go out at once, and the records arriving while
	// its produce request is at the broker go out together as the next one
	// (group commit, publisher.go). A linger adds its length to the answer
	// of every request that finds its partition idle (issue 7: 5 ms capped
	// one connection posting one event at a time at about 160 requests/s).
	DefaultKafkaLinger = 0
	// DefaultKafkaBatchTimeout is the batch timeout to give a kafka-go
	// Writer (bench's raw-Writer limit): its own default, 1 s, would add a
	// second to every write whose batch does not fill up, and it has no
	// group commit. It was ingest's linger before issue 7.
	DefaultKafkaBatchTimeout = 5 * time.Millisecond
	// DefaultKafkaBatchSize is large enough that one request of a thousand
	// events to one partition goes out as one produce request (kafka-go's
	// default is 100).
	DefaultKafkaBatchSize = 1000
	// DefaultKafkaBatchBytes matches Kafka's default message.max.bytes
	// (1 MiB plus record overhead); it is also the largest encoded event.
	DefaultKafkaBatchBytes = 1 << 20
	// DefaultMaxInflightRequests and DefaultMaxInflightBytes bound the
	// requests served at once and the body bytes they hold (limits.go):
	// 256 MiB is 51 requests at the body limit, or thousands of typical
	// ones.
	DefaultMaxInflightRequests = 1024
	DefaultMaxInflightBytes    = 256 << 20
)

// Config holds the settings of the ingest service.
type Config struct {
	// ListenAddr serves the API, /metrics, /healthz and /readyz.
	ListenAddr string
	// MaxBodyBytes limits the request body, both as sent and after gzip
	// decompression.
	MaxBodyBytes int64
	// MaxEvents limits the events of one request.
	MaxEvents int
	// MaxEventAge rejects events whose time is older than this.
	MaxEventAge time.Duration
	// ProduceTimeout bounds a request's wait for Kafka: half of it to be
	// taken into a produce request, and its batch's KafkaMaxAttempts
	// attempts and the backoff between them end by the request's deadline
	// (kafkaWriteTimeout, publisher.go).
	ProduceTimeout time.Duration
	// KafkaMaxAttempts is how often the writer tries to produce a batch.
	KafkaMaxAttempts int
	// KafkaBatchTimeout is how long an idle partition lingers for more
	// records before its produce request (0: none, pure group commit);
	// KafkaBatchSize and KafkaBatchBytes bound one produce request
	// (publisher.go).
	KafkaBatchTimeout time.Duration
	KafkaBatchSize    int
	KafkaBatchBytes   int64
	// MaxInflightRequests and MaxInflightBytes bound the requests served
	// at once on the write routes and the request body bytes they hold;
	// beyond either, requests are answered 503 at once (limits.go).
	MaxInflightRequests int
	MaxInflightBytes    int64
	// RateLimitEvents is each organization's rate in events per second (0:
	// no limit), RateLimitBurst the events it may send at once (0:
	// max(MaxEvents, RateLimitEvents)); beyond, 429.
	RateLimitEvents float64
	RateLimitBurst  int
}

// RegisterFlags registers the ingest.* flags with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ListenAddr, "ingest.listen-addr", DefaultListenAddr, "address of the ingest API and its /metrics, /healthz, /readyz")
	fs.Int64Var(&c.MaxBodyBytes, "ingest.max-body-bytes", DefaultMaxBodyBytes, "largest request body in bytes, also after gzip decompression (larger: 413)")
	fs.IntVar(&c.MaxEvents, "ingest.max-events", DefaultMaxEvents, "most events in one request (more: 413)")
	fs.DurationVar(&c.MaxEventAge, "ingest.max-event-age", schemas.DefaultMaxEventAge, "events older than this are rejected")
	fs.DurationVar(&c.ProduceTimeout, "ingest.produce-timeout", DefaultProduceTimeout, "longest wait of a request for Kafka before it is answered 503: at most half of it for its partition's produce request under way (then its events are not sent), the rest for the attempts at its own; a request is answered only once Kafka is done with its events")
	fs.IntVar(&c.KafkaMaxAttempts, "ingest.kafka-max-attempts", DefaultKafkaMaxAttempts, "how often the Kafka writer tries to produce a batch; each attempt gets an equal share of ingest.produce-timeout")
	fs.DurationVar(&c.KafkaBatchTimeout, "ingest.kafka-batch-timeout", DefaultKafkaLinger, "how long a partition with no produce request under way waits for more events before sending (0: at once; the events arriving while a produce request is under way always go out together as the next one). A linger gives fewer, larger produce requests at light load and adds its length to those requests' answers; below half of ingest.produce-timeout")
	fs.IntVar(&c.KafkaBatchSize, "ingest.kafka-batch-size", DefaultKafkaBatchSize, "most records in one Kafka produce batch per partition")
	fs.IntVar(&c.MaxInflightRequests, "ingest.max-inflight-requests", DefaultMaxInflightRequests, "most requests served at once on the write routes; more are answered 503 with Retry-After")
	fs.Int64Var(&c.MaxInflightBytes, "ingest.max-inflight-bytes", DefaultMaxInflightBytes, "most request body bytes (after decompression) held at once; a request past it is answered 503 with Retry-After")
	fs.Float64Var(&c.RateLimitEvents, "ingest.rate-limit-events", 0, "events per second each organization may send (token bucket); more are answered 429 with Retry-After. 0: no limit")
	fs.IntVar(&c.RateLimitBurst, "ingest.rate-limit-burst", 0, "events an organization may send at once under ingest.rate-limit-events; at least ingest.max-events. 0: max(ingest.max-events, ingest.rate-limit-events)")
	fs.Int64Var(&c.KafkaBatchBytes, "ingest.kafka-batch-bytes", DefaultKafkaBatchBytes, "largest Kafka produce batch in bytes; also the largest encoded event. Keep it at or below the topic's max.message.bytes")
}

// Validate reports every problem with the settings.
func (c *Config) Validate() error {
	var errs []error
	if c.ListenAddr == "" {
		errs = append(errs, errors.New("ingest.listen-addr is required"))
	}
	if c.MaxBodyBytes < 1 {
		errs = append(errs, fmt.Errorf("ingest.max-body-bytes must be positive, got %d", c.MaxBodyBytes))
	}
	if c.MaxEvents < 1 {
		errs = append(errs, fmt.Errorf("ingest.max-events must be positive, got %d", c.MaxEvents))
	}
	if c.MaxEventAge <= 0 {
		errs = append(errs, fmt.Errorf("ingest.max-event-age must be positive, got %s", c.MaxEventAge))
	}
	if c.ProduceTimeout <= 0 || c.ProduceTimeout >= telemetry.ShutdownTimeout {
		// A longer wait would let shutdown cut off requests still waiting
		// for their acknowledgement.
		errs = append(errs, fmt.Errorf("ingest.produce-timeout must be positive and below the shutdown timeout %s, got %s", telemetry.ShutdownTimeout, c.ProduceTimeout))
	}
	if c.KafkaBatchTimeout < 0 || c.KafkaBatchTimeout >= c.ProduceTimeout/2 {
		// Records wait at most half the produce-timeout to be taken into a
		// produce request (publisher.go); the batch timeout is part of it.
		errs = append(errs, fmt.Errorf("ingest.kafka-batch-timeout must be 0 or positive and below half of ingest.produce-timeout, got %s", c.KafkaBatchTimeout))
	}
	if c.KafkaMaxAttempts < 1 || c.KafkaMaxAttempts > maxKafkaAttempts {
		errs = append(errs, fmt.Errorf("ingest.kafka-max-attempts must be between 1 and %d, got %d", maxKafkaAttempts, c.KafkaMaxAttempts))
	} else if c.ProduceTimeout > 0 && c.kafkaWriteTimeout() < minKafkaWriteTimeout {
		errs = append(errs, fmt.Errorf("ingest.produce-timeout %s leaves each of ingest.kafka-max-attempts=%d attempts %s after the backoff between them; give each at least %s",
			c.ProduceTimeout, c.KafkaMaxAttempts, c.kafkaWriteTimeout(), minKafkaWriteTimeout))
	}
	if c.MaxInflightRequests < 1 {
		errs = append(errs, fmt.Errorf("ingest.max-inflight-requests must be positive, got %d", c.MaxInflightRequests))
	}
	if c.MaxInflightBytes < c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("ingest.max-inflight-bytes must be at least ingest.max-body-bytes (%d), got %d: a request at the body limit could never be served", c.MaxBodyBytes, c.MaxInflightBytes))
	}
	if c.RateLimitEvents < 0 || math.IsNaN(c.RateLimitEvents) || math.IsInf(c.RateLimitEvents, 0) {
		errs = append(errs, fmt.Errorf("ingest.rate-limit-events must be 0 (no limit) or positive, got %v", c.RateLimitEvents))
	}
	if c.RateLimitBurst != 0 && c.RateLimitBurst < c.MaxEvents {
		errs = append(errs, fmt.Errorf("ingest.rate-limit-burst must be 0 or at least ingest.max-events (%d), got %d: a request of that many events could never pass", c.MaxEvents, c.RateLimitBurst))
	}
	if c.KafkaBatchSize < 1 {
		errs = append(errs, fmt.Errorf("ingest.kafka-batch-size must be positive, got %d", c.KafkaBatchSize))
	}
	if c.KafkaBatchBytes < minKafkaBatchBytes {
		errs = append(errs, fmt.Errorf("ingest.kafka-batch-bytes must be at least %d, got %d", minKafkaBatchBytes, c.KafkaBatchBytes))
	}
	return errors.Join(errs...)
}

// rateLimitBurst is RateLimitBurst with its default.
func (c *Config) rateLimitBurst() int {
	if c.RateLimitBurst > 0 {
		return c.RateLimitBurst
	}
	return max(c.MaxEvents, int(math.Ceil(c.RateLimitEvents)))
}

// The Kafka writer's retries: the backoff before attempt a is
// min(a²·kafkaBackoffMin, kafkaBackoffMax) (kafka-go's formula).
const (
	kafkaBackoffMin      = 100 * time.Millisecond
	kafkaBackoffMax      = 500 * time.Millisecond
	maxKafkaAttempts     = 10
	minKafkaWriteTimeout = 100 * time.Millisecond
)

// kafkaWriteTimeout is the time one produce attempt may take at most:
// attempts and the backoffs between them fit in ProduceTimeout. An attempt
// is also cut short at the deadline of the earliest request in its batch.
func (c *Config) kafkaWriteTimeout() time.Duration {
	attempts := max(c.KafkaMaxAttempts, 1)
	budget := c.ProduceTimeout
	for a := 1; a < attempts; a++ {
		budget -= min(time.Duration(a*a)*kafkaBackoffMin, kafkaBackoffMax)
	}
	return budget / time.Duration(attempts)
}

// minKafkaBatchBytes keeps room for an event with every field at its
// maximum length and some properties.
const minKafkaBatchBytes = 16 << 10

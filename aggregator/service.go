package aggregator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/kafkaclient"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/internal/telemetry"
)

// Deps are what the service is built from.
type Deps struct {
	Kafka *kafkaclient.Config
	// ClickHouse must be bound to Tally's database. When it can open
	// sessions (a *chclient.Conn can), each partition's lookups and inserts
	// run on a session of their own, which read-your-writes needs with
	// several replicas (session.go); any other pool is shared by all, which
	// is correct against one server only.
	ClickHouse driver.Conn
	// ClickHouseConfig is what ClickHouse was opened with. On a cluster
	// (its Cluster set) the aggregator checks the cluster's shard layout
	// against the accepted one whenever it checks the event topic's
	// partition count, and stops consuming on a difference
	// (partitions.go); on one server (Cluster empty, the zero value) it
	// does not check.
	ClickHouseConfig chclient.Config
	// Meters is optional; nil reads them from ClickHouse (meterstore).
	Meters     MeterSource
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
}

// Service is the aggregator: the consumer, its ClickHouse writer and
// dead-letter publisher, and the telemetry server.
type Service struct {
	cfg       Config
	logger    *slog.Logger
	server    *telemetry.Server
	consumer  *consumer
	publisher *kafkaPublisher
	backfill  *backfiller // nil when disabled
	meters    MeterSource // what the backfiller polls
	sessions  *sessions   // nil without sessions
}

// New builds the service; it connects to nothing yet.
func New(cfg Config, deps Deps) (*Service, error) {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if deps.Kafka == nil || len(deps.Kafka.Brokers) == 0 || deps.Kafka.Topic == "" || deps.Kafka.DeadLetterTopic == "" {
		errs = append(errs, errors.New("aggregator needs Kafka brokers, the event topic and the dead-letter topic"))
	}
	if deps.ClickHouse == nil {
		errs = append(errs, errors.New("aggregator needs a ClickHouse connection"))
	}
	var err error
	if deps.Registerer, deps.Gatherer, err = telemetry.Registry(deps.Registerer, deps.Gatherer); err != nil {
		errs = append(errs, fmt.Errorf("aggregator: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "aggregator")
	if deps.Meters == nil {
		deps.Meters = meterstore.New(deps.ClickHouse)
	}

	m := newMetrics(deps.Registerer)
	retry := retrier{initial: cfg.RetryInitialInterval, max: cfg.RetryMaxInterval, logger: logger}
	chStore := &clickhouseStore{conn: deps.ClickHouse, metrics: m}
	if opener, ok := deps.ClickHouse.(sessionOpener); ok {
		chStore.sessions = newSessions(opener.OpenSession, deps.ClickHouse.Stats().MaxOpenConns, deps.Registerer)
		chStore.withSettings = opener.WithSessionSettings
	} else {
		logger.Warn("the ClickHouse pool cannot open sessions: partitions share it, which is correct against one server only")
	}
	store := &retryingStore{next: chStore, retry: retry, metrics: m}
	publisher := newKafkaPublisher(deps.Kafka)
	proc := &processor{
		store:     store,
		meters:    &retryingMeters{next: deps.Meters, retry: retry, metrics: m},
		publisher: &retryingPublisher{next: publisher, retry: retry, metrics: m},
		now:       time.Now,
	}
	s := &Service{cfg: cfg, logger: logger, publisher: publisher, sessions: chStore.sessions,
		server: telemetry.NewServer(cfg.ListenAddr, deps.Gatherer, logger)}
	if cfg.Backfill {
		s.backfill = newBackfiller(chStore, store, retry, m, logger)
		s.meters = deps.Meters
		proc.backfill = s.backfill
	}
	state := newConsumerState(cfg.StallTimeout, m, newSafetyMetrics(deps.Registerer))
	if s.backfill != nil {
		s.backfill.halted = state.topicHalted
	}
	s.consumer = &consumer{cfg: cfg, kafka: deps.Kafka, proc: proc, state: state, metrics: m, logger: logger,
		partitionCounts: &partitionCountStore{conn: deps.ClickHouse}}
	if chCfg := deps.ClickHouseConfig; chCfg.Cluster != "" {
		conn := deps.ClickHouse
		s.consumer.clusterLayout = func(ctx context.Context) error { return chclient.CheckClusterLayout(ctx, conn, chCfg) }
	}

	s.server.AddCheck("clickhouse", deps.ClickHouse.Ping)
	s.server.AddCheck("kafka", deps.Kafka.Ping)
	s.server.AddCheck("consumer", state.check)
	return s, nil
}

// Listen binds the listen address, so that a port conflict fails start-up.
// Calling it again does nothing.
func (s *Service) Listen() error { return s.server.Listen() }

// Addr returns the bound address after Listen.
func (s *Service) Addr() string { return s.server.Addr() }

// Run consumes until ctx is done, then shuts down in this order:
//  1. stop fetching; let each partition's in-flight batch finish and commit
//     for up to DrainTimeout, then abandon it uncommitted (the next owner
//     gets it again, which is safe by design);
//  2. leave the consumer group, so the partitions move to another member
//     now rather than after the session timeout;
//  3. close the dead-letter writer and the partitions' ClickHouse
//     sessions, which the drained batches may still have needed in step 1;
//  4. stop the HTTP server last, so /readyz reports "not ready" and
//     /metrics stays scrapable for as long as the process consumes.
//
// If the HTTP server fails, the consumer stops too: an aggregator whose
// health nobody can see must not keep its partitions.
func (s *Service) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.logger.Info("serving metrics and health", "addr", s.Addr())
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	defer stopHTTP()
	httpDone := make(chan error, 1)
	go func() {
		httpDone <- s.server.Run(httpCtx)
		stopRun()
	}()

	// hard ends the drain of step 1.
	hard, abandon := context.WithCancel(context.Background())
	defer abandon()
	go func() {
		select {
		case <-runCtx.Done():
		case <-hard.Done():
			return
		}
		select {
		case <-time.After(s.cfg.DrainTimeout):
			abandon()
		case <-hard.Done():
		}
	}()

	var backfillDone chan struct{}
	if s.backfill != nil {
		backfillDone = make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { s.backfill.run(runCtx) })
		wg.Go(func() { s.backfill.watch(runCtx, s.meters, meterPollInterval) })
		go func() {
			wg.Wait()
			close(backfillDone)
		}()
	}

	err := s.consumer.run(runCtx, hard) // steps 1 and 2
	if backfillDone != nil {
		<-backfillDone
	}
	err = errors.Join(err, s.publisher.Close(), s.sessions.close()) // step 3
	stopHTTP()                                                      // step 4
	err = errors.Join(err, <-httpDone)
	if err != nil {
		return err // logged by the caller, which decides what stopping means
	}
	s.logger.Info("aggregator stopped")
	return nil
}

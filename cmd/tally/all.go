package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-oss/tally/aggregator"
	"github.com/tally-oss/tally/ingest"
	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/chserver"
	"github.com/tally-oss/tally/internal/devstack"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/kafkaclient"
	"github.com/tally-oss/tally/query"
)

// defaultAllMemoryLimit is tally all's soft memory limit: the aggregator
// catching up a backlog holds a batch and its rows per partition, which the
// garbage collector would otherwise let grow to twice the live heap
// (412 MiB peak RSS with 6 partitions, issue 7); with the limit the process
// stays under issue 7's 300 MB at a little more GC CPU. It is soft: a live
// heap above it is never refused, only collected more often.
const defaultAllMemoryLimit = 240 << 20

// devOrgID is the organization `tally all` creates for local use.
const devOrgID = "dev"

type allFlags struct {
	common       commonFlags
	server       serverFlags
	keys         keyFlags
	kafka        kafkaclient.Config
	ch           chclient.Config
	ingest       ingest.Config
	aggregator   aggregator.Config
	query        query.Config
	dataDir      string
	devAPIKey    string
	kafkaPort    int
	syncWrites   bool
	dlRetention  time.Duration
	dlBytes      int64
	trimInterval time.Duration
	chPort       int
	apiAddr      string
	memoryLimit  int64
}

func (a *allFlags) register(fs *flag.FlagSet) {
	a.common.register(fs)
	a.server.register(fs)
	a.keys.register(fs)
	a.kafka.RegisterFlags(fs)
	a.ch.RegisterFlags(fs)
	a.ingest.RegisterFlags(fs)
	a.aggregator.RegisterFlags(fs)
	a.query.RegisterFlags(fs)
	fs.StringVar(&a.dataDir, "data-dir", "./data", "where the embedded broker and ClickHouse keep their data")
	fs.StringVar(&a.devAPIKey, "dev-api-key", "", "API key of the development organization \"dev\" (default: generated once and kept in the data dir)")
	fs.IntVar(&a.kafkaPort, "dev.kafka-port", 9092, "port of the embedded Kafka-protocol broker (used unless kafka.brokers is set)")
	fs.BoolVar(&a.syncWrites, "dev.kafka-sync-writes", true, "fsync every produced batch in the embedded broker before it is acknowledged")
	fs.DurationVar(&a.dlRetention, "dev.dead-letter-retention", 7*24*time.Hour, "how long the embedded broker keeps dead-letter records (event records are kept until the aggregator commits them)")
	fs.Int64Var(&a.dlBytes, "dev.dead-letter-retention-bytes", 1<<30, "bytes of dead-letter records the embedded broker keeps per partition at most")
	fs.DurationVar(&a.trimInterval, "dev.trim-interval", 30*time.Second, "how often the embedded broker syncs ClickHouse's data and deletes the event records the aggregator committed")
	fs.StringVar(&a.apiAddr, "api.listen-addr", defaultAPIAddr, "one address serving every public API route (ingest, query, Lago, PriceOps, Measure), routed by path")
	fs.Int64Var(&a.memoryLimit, "dev.memory-limit-bytes", defaultAllMemoryLimit, "soft limit of the process's Go memory (runtime/debug.SetMemoryLimit): past it the garbage collector runs more often instead of letting the heap double. It is below the sum of the in-flight bounds (ingest's request bytes and the aggregator's batches): should all be held at once, the collector takes up to half the CPU rather than the process growing. 0: the runtime's default; GOMEMLIMIT in the environment wins")
	fs.IntVar(&a.chPort, "dev.clickhouse-port", 0, "native port of the embedded ClickHouse server (0: a free port; used unless clickhouse.addr is set)")
}

func runAll(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("all", flag.ContinueOnError)
	var a allFlags
	a.register(fs)
	if err := parseFlags(fs, args, a.server.validate, a.kafka.Validate, a.ch.Validate, a.ingest.Validate, a.aggregator.Validate, a.query.Validate, a.validateDev); err != nil {
		return err
	}
	logger, err := a.common.logger()
	if err != nil {
		return err
	}
	if a.memoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(a.memoryLimit)
	}
	stopAdmin, err := a.server.start(logger) // HTTP timeouts, and profiles on -admin.listen-addr if set
	if err != nil {
		return err
	}
	defer stopAdmin()
	if err := os.MkdirAll(a.dataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	var keys httpapi.Keys
	devKey, err := a.devKey()
	if err != nil {
		return err
	}
	if err := errors.Join(keys.Add(devOrgID, devKey), a.keys.load(&keys)); err != nil {
		return err
	}

	// Dependencies start first and stop last: ClickHouse, then the embedded
	// broker, whose trimmer syncs ClickHouse's data before deleting records.
	// Deferred calls run in reverse, after every service is down.
	durable := newDevDurability(a.dataDir)
	if !isSet(fs, "clickhouse.addr") {
		srv, err := chserver.Start(ctx, chserver.Options{Dir: filepath.Join(a.dataDir, "clickhouse"), TCPPort: a.chPort, Logger: logger})
		if err != nil {
			return err
		}
		durable.srv = srv
		defer func() {
			if err := srv.Stop(); err != nil {
				logger.Error("stop clickhouse", "err", err)
			}
			durable.stopped(logger)
		}()
		a.ch.Addr = srv.Addr()
		logger.Info("embedded clickhouse server started", "addr", srv.Addr(), "dir", filepath.Join(a.dataDir, "clickhouse"))
	}
	topicConfigs := kafkaclient.TopicConfigs{}
	devMetrics := prometheus.NewRegistry() // the embedded broker's, served with the aggregator's
	if !isSet(fs, "kafka.brokers") {
		broker, err := devstack.StartBroker(devstack.BrokerOptions{
			Dir: filepath.Join(a.dataDir, "kafka"), Port: a.kafkaPort, SyncWrites: a.syncWrites,
			BeforeTrim: durable.beforeTrim(), Logger: logger, Registerer: devMetrics,
		})
		if err != nil {
			return err
		}
		defer broker.Close() // flushes the log to disk
		a.kafka.Brokers = broker.Addrs()
		logger.Info("embedded kafka-protocol broker started", "addr", strings.Join(broker.Addrs(), ","), "dir", filepath.Join(a.dataDir, "kafka"))
		topicConfigs = devstack.TopicConfigs(a.dlRetention, a.dlBytes)
		// Before the aggregator joins the group: a replay after a power cut
		// rewinds the group's commits.
		if err := durable.start(ctx, broker, a.kafka.Topic, a.aggregator.GroupID, logger); err != nil {
			return err
		}
		// The trimmer calls into the broker and ClickHouse: it must be done
		// before either stops.
		trimCtx, stopTrim := context.WithCancel(context.Background())
		trimDone := make(chan struct{})
		go func() {
			defer close(trimDone)
			broker.TrimCommitted(trimCtx, a.kafka.Topic, a.aggregator.GroupID, a.trimInterval)
		}()
		defer func() { stopTrim(); <-trimDone }()
	}
	if err := a.kafka.EnsureTopics(ctx, topicConfigs); err != nil {
		return err
	}
	conn, err := openClickHouse(ctx, &a.ch, true, logger)
	if err != nil {
		return err
	}
	defer conn.Close()

	agg, err := newAggregator(a.aggregator, &a.kafka, &a.ch, conn, logger, devMetrics)
	if err != nil {
		return err
	}
	in, err := newIngest(a.ingest, &a.kafka, &keys, conn, logger)
	if err != nil {
		return err
	}
	// The status page reports ingest and the aggregator on the addresses
	// they bound, unless configured otherwise.
	if !isSet(fs, "query.status-components") {
		if a.query.StatusComponents, err = localStatusComponents(in, agg); err != nil {
			return err
		}
	}
	q, err := newQuery(a.query, conn, &keys, logger)
	if err != nil {
		return err
	}
	api := newAPIGateway(a.apiAddr, ingest.PublicPaths, in.Handler(), q.Handler(), logger)
	// Stop order: the one-address front first, then ingest (no new events
	// are accepted), then the aggregator (it drains what ingest produced
	// and commits), then query.
	services := []namedRunner{{"api", api}, {"ingest", in}, {"aggregator", agg}, {"query", q}}
	for _, s := range services {
		if err := s.svc.Listen(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	printBanner(api.Addr(), in.Addr(), q.Addr(), agg.Addr(), devKey, a.devAPIKey == "")
	return runInOrder(ctx, services, logger)
}

type namedRunner struct {
	name string
	svc  runner
}

// runInOrder runs every service until ctx is done or one fails, then stops
// them one at a time in slice order.
func runInOrder(ctx context.Context, services []namedRunner, logger *slog.Logger) error {
	type result struct {
		name string
		err  error
	}
	failed := make(chan result, len(services))
	cancels := make([]context.CancelFunc, len(services))
	dones := make([]chan error, len(services))
	for i, s := range services {
		sctx, cancel := context.WithCancel(context.Background())
		cancels[i], dones[i] = cancel, make(chan error, 1)
		go func() {
			err := s.svc.Run(sctx)
			dones[i] <- err
			if sctx.Err() == nil {
				failed <- result{s.name, err}
			}
		}()
	}
	var first error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case r := <-failed:
		first = fmt.Errorf("%s stopped: %v", r.name, r.err)
		logger.Error("service stopped; shutting down", "service", r.name, "err", r.err)
	}
	for i, s := range services {
		cancels[i]()
		if err := <-dones[i]; err != nil && first == nil {
			first = fmt.Errorf("%s: %w", s.name, err)
		}
		logger.Info("stopped", "service", s.name)
	}
	return first
}

// devKey returns the development organization's API key: the configured
// one, else the one generated on an earlier run, else a new one kept in the
// data dir so that a restart does not invalidate it.
func (a *allFlags) devKey() (string, error) {
	if a.devAPIKey != "" {
		return a.devAPIKey, nil
	}
	path := filepath.Join(a.dataDir, "dev-api-key")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= httpapi.MinKeyLength {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	key := "tally_dev_" + hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save generated dev API key: %w", err)
	}
	return key, nil
}

func printBanner(apiAddr, ingestAddr, queryAddr, aggAddr, key string, generated bool) {
	source := "from TALLY_DEV_API_KEY"
	if generated {
		source = "generated, kept in the data dir"
	}
	fmt.Fprintf(os.Stderr, `
Tally is running.
  API         http://%s/api/v1/...  (every route: events, meters, usage, catalog, Lago, PriceOps, Measure)
  console     http://%s/console     (usage in the browser; paste the key below)
  ingest      http://%s/metrics
  query       http://%s/metrics
  aggregator  http://%s/metrics
  API key of organization %q (%s):
    %s
  Try: export TALLY_KEY=%s

`, apiAddr, apiAddr, ingestAddr, queryAddr, aggAddr, devOrgID, source, key, key)
}

// validateDev checks the dev.* flags that can be wrong.
func (a *allFlags) validateDev() error {
	if a.trimInterval <= 0 {
		return fmt.Errorf("dev.trim-interval must be positive, not %s", a.trimInterval)
	}
	return nil
}

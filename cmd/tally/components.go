package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-oss/tally/aggregator"
	"github.com/tally-oss/tally/ingest"
	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/kafkaclient"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/query"
)

// runner is what every component service offers.
type runner interface {
	Listen() error
	Addr() string
	Run(ctx context.Context) error
}

// newIngest builds the ingest service; conn, when not nil, is where the
// compatible routes look up meters and subscriptions.
func newIngest(cfg ingest.Config, kafka *kafkaclient.Config, keys *httpapi.Keys, conn driver.Conn, logger *slog.Logger) (*ingest.Service, error) {
	reg := newRegistry()
	deps := ingest.Deps{
		Kafka: kafka, Keys: keys, Logger: logger,
		Registerer: reg, Gatherer: reg,
	}
	if conn != nil {
		deps.Catalog = newIngestCatalog(conn)
	}
	return ingest.New(cfg, deps)
}

// newAggregator builds the aggregator service; its /metrics also serves
// extra (`tally all` adds the embedded broker's).
func newAggregator(cfg aggregator.Config, kafka *kafkaclient.Config, ch *chclient.Config, conn driver.Conn, logger *slog.Logger, extra ...prometheus.Gatherer) (*aggregator.Service, error) {
	reg := newRegistry()
	return aggregator.New(cfg, aggregator.Deps{
		Kafka: kafka, ClickHouse: conn, ClickHouseConfig: *ch, Meters: meterstore.New(conn),
		Logger: logger, Registerer: reg, Gatherer: append(prometheus.Gatherers{reg}, extra...),
	})
}

func newQuery(cfg query.Config, conn driver.Conn, keys *httpapi.Keys, logger *slog.Logger) (*query.Service, error) {
	// query.New validates cfg.MetersFile and Run applies it before serving.
	reg := newRegistry()
	return query.New(cfg, query.Deps{
		ClickHouse: conn, Keys: keys, Logger: logger,
		Registerer: reg, Gatherer: reg,
	})
}

// localStatusComponents binds ingest's and the aggregator's addresses and
// returns their /readyz as the status components of a query service in
// the same process or on the same host (an address on every interface is
// reached on the loopback).
func localStatusComponents(in, agg runner) (query.StatusComponents, error) {
	var list query.StatusComponents
	for _, c := range []struct {
		name string
		svc  runner
	}{{"ingest", in}, {"aggregator", agg}} {
		if err := c.svc.Listen(); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		host, port, err := net.SplitHostPort(c.svc.Addr())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		list = append(list, query.StatusComponent{Name: c.name, URL: "http://" + net.JoinHostPort(host, port) + "/readyz"})
	}
	return list, nil
}

// serve starts the admin server when one is configured, binds the
// service's port (so a port conflict fails start-up) and runs it.
func serve(ctx context.Context, svc runner, server *serverFlags, logger *slog.Logger) error {
	stopAdmin, err := server.start(logger)
	if err != nil {
		return err
	}
	defer stopAdmin() // after the service: profiles stay available while it drains
	if err := svc.Listen(); err != nil {
		return err
	}
	return svc.Run(ctx)
}

func runIngest(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	var (
		common commonFlags
		server serverFlags
		keyCfg keyFlags
		kafka  kafkaclient.Config
		ch     chclient.Config
		cfg    ingest.Config
	)
	common.register(fs)
	server.register(fs)
	keyCfg.register(fs)
	kafka.RegisterFlags(fs)
	ch.RegisterFlags(fs)
	cfg.RegisterFlags(fs)
	if err := parseFlags(fs, args, server.validate, kafka.Validate, ch.Validate, cfg.Validate); err != nil {
		return err
	}
	logger, err := common.logger()
	if err != nil {
		return err
	}
	keys, err := keyCfg.required()
	if err != nil {
		return err
	}
	if err := kafka.EnsureTopics(ctx, kafkaclient.TopicConfigs{}); err != nil {
		return err
	}
	// Readiness refuses an event topic that can delete accepted events
	// before they are metered (kafkaclient.Ping); say it once in the log.
	if err := kafka.Ping(ctx); errors.Is(err, kafkaclient.ErrUnsafeEventTopic) {
		logger.Error("the event topic can delete accepted events before they are metered; readiness stays red until it is fixed", "err", err)
	}
	// ClickHouse is optional for ingest: only the compatible routes that
	// name a meter (PriceOps) or a subscription (Lago) look it up, and
	// native events are accepted while it is down. The pool connects on
	// first use, so ingest starts without it.
	var conn driver.Conn
	if isSet(fs, "clickhouse.addr") {
		if conn, err = ch.OpenLazy(); err != nil {
			return err
		}
		defer conn.Close()
	}
	svc, err := newIngest(cfg, &kafka, keys, conn, logger)
	if err != nil {
		return err
	}
	return serve(ctx, svc, &server, logger)
}

func runAggregator(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("aggregator", flag.ContinueOnError)
	var (
		common  commonFlags
		server  serverFlags
		kafka   kafkaclient.Config
		ch      chclient.Config
		cfg     aggregator.Config
		migrate bool
	)
	common.register(fs)
	server.register(fs)
	kafka.RegisterFlags(fs)
	ch.RegisterFlags(fs)
	cfg.RegisterFlags(fs)
	fs.BoolVar(&migrate, "clickhouse.migrate", true, "apply the ClickHouse schema at start")
	if err := parseFlags(fs, args, server.validate, kafka.Validate, ch.Validate, cfg.Validate); err != nil {
		return err
	}
	logger, err := common.logger()
	if err != nil {
		return err
	}
	if err := kafka.EnsureTopics(ctx, kafkaclient.TopicConfigs{}); err != nil {
		return err
	}
	conn, err := openClickHouse(ctx, &ch, migrate, logger)
	if err != nil {
		return err
	}
	// The connection outlives the aggregator: Run returns only after the
	// last batch is written and committed (or abandoned uncommitted).
	defer conn.Close()
	svc, err := newAggregator(cfg, &kafka, &ch, conn, logger)
	if err != nil {
		return err
	}
	return serve(ctx, svc, &server, logger)
}

func runQuery(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	var (
		common  commonFlags
		server  serverFlags
		keyCfg  keyFlags
		ch      chclient.Config
		cfg     query.Config
		migrate bool
	)
	common.register(fs)
	server.register(fs)
	keyCfg.register(fs)
	ch.RegisterFlags(fs)
	cfg.RegisterFlags(fs)
	fs.BoolVar(&migrate, "clickhouse.migrate", true, "apply the ClickHouse schema at start")
	if err := parseFlags(fs, args, server.validate, ch.Validate, cfg.Validate); err != nil {
		return err
	}
	logger, err := common.logger()
	if err != nil {
		return err
	}
	keys, err := keyCfg.required()
	if err != nil {
		return err
	}
	conn, err := openClickHouse(ctx, &ch, migrate, logger)
	if err != nil {
		return err
	}
	defer conn.Close()
	svc, err := newQuery(cfg, conn, keys, logger)
	if err != nil {
		return err
	}
	return serve(ctx, svc, &server, logger)
}

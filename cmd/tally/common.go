package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/config"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/telemetry"
)

// commonFlags are the settings every command has.
type commonFlags struct {
	logLevel  string
	logFormat string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.logLevel, "log.level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log.format", "text", "log format: text or json")
}

func (c *commonFlags) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log.format %q must be text or json", c.logFormat)
}

// serverFlags are the settings of every command that serves HTTP: the
// timeouts of its servers and the admin address of its profiles.
type serverFlags struct {
	adminAddr string
	timeouts  telemetry.Timeouts
}

func (s *serverFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.adminAddr, "admin.listen-addr", "",
		"address serving Go profiles on /debug/pprof/ for operators (empty: off); bind it to localhost or a private network, never publicly")
	s.timeouts.RegisterFlags(fs)
}

func (s *serverFlags) validate() error { return s.timeouts.Validate() }

// start applies the timeouts to every server the command runs and, when
// an admin address is set, binds it (so that a port conflict fails
// start-up) and serves the profiles there until stop is called.
func (s *serverFlags) start(logger *slog.Logger) (stop func(), err error) {
	telemetry.SetTimeouts(s.timeouts)
	if s.adminAddr == "" {
		return func() {}, nil
	}
	admin := telemetry.NewAdminServer(s.adminAddr, logger.With("component", "admin"))
	if err := admin.Listen(); err != nil {
		return nil, fmt.Errorf("admin.listen-addr: %w", err)
	}
	logger.Info("serving Go profiles on the admin address", "addr", admin.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := admin.Run(ctx); err != nil {
			logger.Error("admin server stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

// keyFlags are where API keys come from.
type keyFlags struct {
	spec string
	file string
}

func (k *keyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.spec, "api-keys", "", "API keys as org:key pairs, comma-separated (keys at least 16 characters)")
	fs.StringVar(&k.file, "api-keys-file", "", "file of API keys, one \"<org> <key>\" per line")
}

// required returns the configured keys; a service that authenticates
// every request cannot start without any.
func (k *keyFlags) required() (*httpapi.Keys, error) {
	var keys httpapi.Keys
	if err := k.load(&keys); err != nil {
		return nil, err
	}
	if keys.Len() == 0 {
		return nil, errors.New("no API keys: set -api-keys (TALLY_API_KEYS) or -api-keys-file (TALLY_API_KEYS_FILE)")
	}
	return &keys, nil
}

func (k *keyFlags) load(keys *httpapi.Keys) error {
	var errs []error
	if k.spec != "" {
		errs = append(errs, keys.AddSpec(k.spec))
	}
	if k.file != "" {
		errs = append(errs, keys.AddFile(k.file))
	}
	return errors.Join(errs...)
}

// parseFlags parses args, applies TALLY_* overrides and reports every
// invalid setting at once.
func parseFlags(fs *flag.FlagSet, args []string, validators ...func() error) error {
	return parseFlagsArgs(fs, args, 0, validators...)
}

// parseFlagsArgs is parseFlags for a command that takes exactly nargs
// arguments after its flags.
func parseFlagsArgs(fs *flag.FlagSet, args []string, nargs int, validators ...func() error) error {
	if flagSetSeen != nil {
		// `tally help config` collects the flag set instead of running
		// the command (config_reference.go).
		flagSetSeen(fs, nil)
		return errFlagsCollected
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != nargs {
		if nargs == 0 {
			return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
		}
		return fmt.Errorf("want %d argument(s) after the flags, got %d: %q", nargs, fs.NArg(), fs.Args())
	}
	if err := config.ApplyEnv(fs); err != nil {
		return err
	}
	var errs []error
	for _, v := range validators {
		errs = append(errs, v())
	}
	return errors.Join(errs...)
}

// isSet reports whether a flag was given on the command line or through
// its environment variable.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// openClickHouse applies migrations (when asked) and opens the database.
func openClickHouse(ctx context.Context, cfg *chclient.Config, migrate bool, logger *slog.Logger) (driver.Conn, error) {
	if migrate {
		if err := migrateClickHouse(ctx, cfg, logger); err != nil {
			return nil, err
		}
	}
	return cfg.Open(ctx)
}

func migrateClickHouse(ctx context.Context, cfg *chclient.Config, logger *slog.Logger) error {
	return migrateClickHouseWith(ctx, cfg, chclient.MigrateOptions{Logger: logger}, logger)
}

func migrateClickHouseWith(ctx context.Context, cfg *chclient.Config, opts chclient.MigrateOptions, logger *slog.Logger) error {
	conn, err := cfg.OpenServer(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	applied, err := chclient.MigrateWith(ctx, conn, cfg.Database, opts)
	for _, m := range applied {
		logger.Info("applied migration", "database", cfg.Database, "version", m.Version, "name", m.Name)
	}
	if err != nil {
		return fmt.Errorf("migrate clickhouse: %w", err)
	}
	return nil
}

func runMigrate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	var common commonFlags
	var ch chclient.Config
	common.register(fs)
	ch.RegisterFlags(fs)
	reapply := fs.Bool("migrate.reapply", false, "also run the DDL of applied migrations again (IF NOT EXISTS, copies excepted), in order: on a cluster, creates the tables and views on servers added to remote_servers since (SCALING.md)")
	if err := parseFlags(fs, args, ch.Validate); err != nil {
		return err
	}
	logger, err := common.logger()
	if err != nil {
		return err
	}
	return migrateClickHouseWith(ctx, &ch, chclient.MigrateOptions{Logger: logger, Reapply: *reapply}, logger)
}

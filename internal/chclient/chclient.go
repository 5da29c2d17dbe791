// Package chclient holds the ClickHouse connection settings shared by the
// aggregator, the query service and migrations, and opens connections with
// them. Tally speaks ClickHouse's native protocol: the HTTP interface of
// clickhouse-go does not work with ClickHouse 18.16.
//
// Open returns a pool (*Conn) that can also open sessions: connections
// held by one user for a sequence of statements, so that a read sees the
// writes made before it (session.go).
//
// On a ClickHouse cluster (Config.Cluster) the same tables are Distributed
// tables over Replicated ones on every server: connections send the
// settings that make a Distributed insert synchronous and exact
// (cluster.go), Open checks the cluster's replicas against the insert
// quorum (CheckCluster), and Migrate runs the DDL ON CLUSTER.
package chclient

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/schemas"
)

// Config is how to reach ClickHouse.
type Config struct {
	Addr          string
	User          string
	Password      string
	Database      string
	TLS           bool
	TLSSkipVerify bool
	DialTimeout   time.Duration
	MaxOpenConns  int
	// InsertQuorum and SequentialConsistency are sent on sessions only
	// (OpenSession): see session.go.
	InsertQuorum          int
	SequentialConsistency bool
	// Cluster is the name of the ClickHouse cluster (the servers'
	// remote_servers) Tally's tables are spread on, "" for one server.
	// On a cluster every table is a Distributed table over a Replicated
	// one on each server (schemas.Render), migrations run ON CLUSTER, and
	// every connection sends clusterSettings.
	Cluster string
}

// RegisterFlags registers the clickhouse.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "clickhouse.addr", "127.0.0.1:9000", "ClickHouse native-protocol address host:port (several separated by commas)")
	fs.StringVar(&c.User, "clickhouse.user", "default", "ClickHouse user")
	fs.StringVar(&c.Password, "clickhouse.password", "", "ClickHouse password")
	fs.StringVar(&c.Database, "clickhouse.database", "tally", "ClickHouse database holding Tally's tables")
	fs.BoolVar(&c.TLS, "clickhouse.tls", false, "connect to ClickHouse with TLS")
	fs.BoolVar(&c.TLSSkipVerify, "clickhouse.tls-skip-verify", false, "with TLS, do not verify the server certificate (testing only)")
	fs.DurationVar(&c.DialTimeout, "clickhouse.dial-timeout", 5*time.Second, "ClickHouse connection timeout")
	fs.IntVar(&c.MaxOpenConns, "clickhouse.max-open-conns", 16, "maximum open ClickHouse connections per process (the aggregator opens up to as many pinned sessions besides)")
	fs.IntVar(&c.InsertQuorum, "clickhouse.insert-quorum", 0, "replicas that must have each of the aggregator's inserts before it returns (insert_quorum, for Replicated tables); its event lookups then read with select_sequential_consistency=1. 0: off (one server); on a cluster with replicas it must be the replicas of each shard")
	fs.StringVar(&c.Cluster, "clickhouse.cluster", "", "ClickHouse cluster (a remote_servers name) holding Tally's tables: Replicated tables on every server behind Distributed ones, created ON CLUSTER by migrations; empty: one server")
	fs.BoolVar(&c.SequentialConsistency, "clickhouse.sequential-consistency", false, "the aggregator's event lookups read with select_sequential_consistency=1 (replicated or ClickHouse Cloud: they see inserts made through another connection); implied by clickhouse.insert-quorum")
}

// Validate reports every problem with the settings.
func (c *Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("clickhouse.addr is required"))
	}
	if !schemas.DatabasePattern.MatchString(c.Database) {
		errs = append(errs, fmt.Errorf("clickhouse.database %q must match %s", c.Database, schemas.DatabasePattern))
	}
	if c.MaxOpenConns < 1 {
		errs = append(errs, errors.New("clickhouse.max-open-conns must be at least 1"))
	}
	if c.Cluster != "" && !schemas.ClusterPattern.MatchString(c.Cluster) {
		errs = append(errs, fmt.Errorf("clickhouse.cluster %q must match %s", c.Cluster, schemas.ClusterPattern))
	}
	if c.InsertQuorum < 0 {
		errs = append(errs, errors.New("clickhouse.insert-quorum must be 0 (off) or a number of replicas"))
	}
	return errors.Join(errs...)
}

// Open connects to the configured database and pings it. The pool it
// returns is a *Conn, which can also open sessions. On a cluster it also
// checks the cluster (CheckCluster) and fails when it is not fit.
func (c *Config) Open(ctx context.Context) (driver.Conn, error) {
	conn, err := c.open(ctx, c.Database)
	if err != nil || c.Cluster == "" {
		return conn, err
	}
	if err := CheckCluster(ctx, conn, *c); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

// OpenServer connects without selecting a database (for migrations, which
// may have to create it). Its reads wait up to MigrationReadTimeout: a copy
// migration's INSERT ... SELECT of one month (chclient.Migrate) sends
// nothing back until it is done, and a month of tens of millions of rows
// can take longer than the driver's default of 5 minutes.
func (c *Config) OpenServer(ctx context.Context) (driver.Conn, error) {
	return c.openWith(ctx, "default", func(o *clickhouse.Options) { o.ReadTimeout = MigrationReadTimeout })
}

// MigrationReadTimeout is the read timeout of OpenServer's connections.
const MigrationReadTimeout = 2 * time.Hour

// OpenLazy returns a connection pool to the configured database without
// connecting: the first query connects. For a component that can do most
// of its work while ClickHouse is down (ingest, whose catalog lookups
// fail then, while native events are still accepted).
func (c *Config) OpenLazy() (driver.Conn, error) {
	conn, err := clickhouse.Open(c.options(c.Database))
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %s: %w", c.Addr, err)
	}
	return &Conn{Conn: conn, cfg: *c, database: c.Database}, nil
}

func (c *Config) options(database string) *clickhouse.Options {
	opts := &clickhouse.Options{
		Addr:             splitComma(c.Addr),
		Protocol:         clickhouse.Native,
		Auth:             clickhouse.Auth{Database: database, Username: c.User, Password: c.Password},
		DialTimeout:      c.DialTimeout,
		MaxOpenConns:     c.MaxOpenConns,
		MaxIdleConns:     c.MaxOpenConns,
		ConnMaxLifetime:  time.Hour,
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
		Compression:      &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		Settings:         c.clusterSettings(),
	}
	if c.TLS {
		opts.TLS = &tls.Config{InsecureSkipVerify: c.TLSSkipVerify} //nolint:gosec // opt-in, for testing
	}
	return opts
}

func (c *Config) open(ctx context.Context, database string) (driver.Conn, error) {
	return c.openWith(ctx, database, func(*clickhouse.Options) {})
}

func (c *Config) openWith(ctx context.Context, database string, tune func(*clickhouse.Options)) (driver.Conn, error) {
	opts := c.options(database)
	tune(opts)
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %s: %w", c.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("ping clickhouse %s: %w", c.Addr, err)
	}
	return &Conn{Conn: conn, cfg: *c, database: database}, nil
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

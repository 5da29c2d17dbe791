package chserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	// Name is the cluster's name in remote_servers (ON CLUSTER <Name>,
	// Distributed(<Name>, ...)). Required.
	Name string
	// Shards and Replicas give the layout: Shards x Replicas servers.
	Shards, Replicas int
	// Dir holds one directory per server, "s<shard>r<replica>" (1-based,
	// as the macros). Required.
	Dir string
	// ZooKeeperAddr is the ZooKeeper the replicas share ("host:port",
	// e.g. StartZooKeeper's Addr). Required.
	ZooKeeperAddr string
	// SessionTimeout is the replicas' ZooKeeper session timeout; 0 means
	// 10 s (the most StartZooKeeper allows). A killed replica can rejoin
	// only once its old session expired; a shorter one expires spuriously
	// on a loaded machine and turns tables read-only meanwhile.
	SessionTimeout time.Duration
	// Binary overrides the server binary, as in Options.
	Binary string
}

const defaultSessionTimeout = 10 * time.Second

// Cluster is Shards x Replicas local ClickHouse servers sharing one
// ZooKeeper: the layout a replicated, sharded production cluster has, on
// loopback ports. Shard i (0-based) has the {shard} macro "01", "02", ...;
// replica j has {replica} "r1", "r2", ... Every server knows the whole
// cluster, so ON CLUSTER DDL and Distributed tables work from any of them.
type Cluster struct {
	name   string
	logger *slog.Logger

	mu      sync.Mutex // guards servers; opts never change after start
	opts    [][]Options
	servers [][]*Server // nil while a server is killed
}

// StartCluster starts every server of the cluster and returns once each
// answers. Ports are picked once and stay fixed for each server's life,
// including across Restart, because every server's remote_servers names
// them. If a picked port is taken before its server binds it, the whole
// cluster is started again on new ports.
func StartCluster(ctx context.Context, opts ClusterOptions, logger *slog.Logger) (*Cluster, error) {
	var problems []error
	if opts.Name == "" {
		problems = append(problems, errors.New("Name is required"))
	}
	if opts.Shards < 1 || opts.Replicas < 1 {
		problems = append(problems, fmt.Errorf("Shards and Replicas must be at least 1, got %d x %d", opts.Shards, opts.Replicas))
	}
	if opts.Dir == "" {
		problems = append(problems, errors.New("Dir is required"))
	}
	if opts.ZooKeeperAddr == "" {
		problems = append(problems, errors.New("ZooKeeperAddr is required"))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("clickhouse cluster options: %w", errors.Join(problems...))
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return retryOnPortInUse(logger, "a cluster port was taken, starting the cluster on new ports", func() (*Cluster, error) {
		return startCluster(ctx, opts, logger)
	})
}

func startCluster(ctx context.Context, opts ClusterOptions, logger *slog.Logger) (*Cluster, error) {
	n := opts.Shards * opts.Replicas
	ports, err := FreePorts(3 * n)
	if err != nil {
		return nil, err
	}
	timeout := opts.SessionTimeout
	if timeout == 0 {
		timeout = defaultSessionTimeout
	}
	shards := make([][]string, opts.Shards)
	for s := range shards {
		for r := range opts.Replicas {
			shards[s] = append(shards[s], net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[3*(s*opts.Replicas+r)])))
		}
	}
	c := &Cluster{
		name:    opts.Name,
		logger:  logger,
		opts:    make([][]Options, opts.Shards),
		servers: make([][]*Server, opts.Shards),
	}
	for s := range opts.Shards {
		c.opts[s] = make([]Options, opts.Replicas)
		c.servers[s] = make([]*Server, opts.Replicas)
		for r := range opts.Replicas {
			i := 3 * (s*opts.Replicas + r)
			shardMacro, replicaMacro := fmt.Sprintf("%02d", s+1), fmt.Sprintf("r%d", r+1)
			c.opts[s][r] = Options{
				Dir:      filepath.Join(opts.Dir, fmt.Sprintf("s%dr%d", s+1, r+1)),
				TCPPort:  ports[i],
				HTTPPort: ports[i+1],
				Binary:   opts.Binary,
				Logger:   logger.With("shard", shardMacro, "replica", replicaMacro),
				Replica: &ReplicaConfig{
					Cluster:         opts.Name,
					Shards:          shards,
					ZooKeeper:       []string{opts.ZooKeeperAddr},
					SessionTimeout:  timeout,
					Shard:           shardMacro,
					Replica:         replicaMacro,
					InterserverPort: ports[i+2],
				},
			}
		}
	}
	// One at a time: four servers starting at once on two cores take as
	// long as one after the other, and a failure names one server.
	for s := range c.servers {
		for r := range c.servers[s] {
			srv, err := Start(ctx, c.opts[s][r])
			if err != nil {
				_ = c.Stop()
				return nil, fmt.Errorf("start clickhouse shard %d replica %d: %w", s+1, r+1, err)
			}
			c.servers[s][r] = srv
		}
	}
	return c, nil
}

// Name is the cluster's name, for ON CLUSTER and Distributed tables.
func (c *Cluster) Name() string { return c.name }

// Shards is the number of shards.
func (c *Cluster) Shards() int { return len(c.opts) }

// Replicas is the number of replicas per shard.
func (c *Cluster) Replicas() int { return len(c.opts[0]) }

// Addrs lists the native address of every server, shard by shard, replica
// by replica, whether it is running or killed.
func (c *Cluster) Addrs() []string {
	var addrs []string
	for s := range c.opts {
		for r := range c.opts[s] {
			addrs = append(addrs, c.Addr(s, r))
		}
	}
	return addrs
}

// Addr is the native address of replica r (0-based) of shard s (0-based).
// It does not change across Kill and Restart.
func (c *Cluster) Addr(s, r int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.opts[s][r].TCPPort))
}

// Server is the running server of replica r of shard s (0-based), or nil
// while it is killed.
func (c *Cluster) Server(s, r int) *Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[s][r]
}

// Kill ends replica r of shard s (0-based) with SIGKILL, as a crash would,
// and waits for it to exit. Its data directory stays for Restart.
func (c *Cluster) Kill(s, r int) error {
	c.mu.Lock()
	srv := c.servers[s][r]
	c.servers[s][r] = nil
	c.mu.Unlock()
	if srv == nil {
		return fmt.Errorf("clickhouse shard %d replica %d is not running", s+1, r+1)
	}
	c.logger.Info("killing clickhouse replica", "shard", s+1, "replica", r+1, "addr", c.Addr(s, r))
	return srv.Kill()
}

// Restart starts replica r of shard s (0-based) again on its directory,
// ports and macros; it stops it first (SIGTERM) if it is running. The
// replica rejoins the cluster and catches up from the others by itself,
// once its previous ZooKeeper session has expired (SessionTimeout after a
// Kill); Restart returns when the server answers, not when it caught up.
// It fails if another process took one of the replica's ports meanwhile.
func (c *Cluster) Restart(ctx context.Context, s, r int) error {
	c.mu.Lock()
	srv := c.servers[s][r]
	c.servers[s][r] = nil
	c.mu.Unlock()
	if srv != nil {
		if err := srv.Stop(); err != nil {
			c.logger.Warn("stop before restart", "shard", s+1, "replica", r+1, "err", err)
		}
	}
	srv, err := Start(ctx, c.opts[s][r])
	if err != nil {
		return fmt.Errorf("restart clickhouse shard %d replica %d: %w", s+1, r+1, err)
	}
	c.mu.Lock()
	c.servers[s][r] = srv
	c.mu.Unlock()
	return nil
}

// Stop stops every running server (SIGTERM, all at once) and returns
// their errors joined. Safe to call more than once.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	var running []*Server
	for s := range c.servers {
		for r, srv := range c.servers[s] {
			if srv != nil {
				running = append(running, srv)
				c.servers[s][r] = nil
			}
		}
	}
	c.mu.Unlock()
	errs := make([]error, len(running))
	var wg sync.WaitGroup
	for i, srv := range running {
		wg.Go(func() { errs[i] = srv.Stop() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Package chserver runs a private ClickHouse server as a child process.
//
// Tests and the one-command local run (`tally all`) need a real ClickHouse
// without asking anyone to install and configure one: Start writes a minimal
// config under a directory, launches the server on loopback ports, and
// returns once it answers on the native protocol. The same directory can be
// started again and keeps its data. Production points Tally at its own
// ClickHouse and never uses this package.
//
// Debian 12 ships ClickHouse 18.16 (binary clickhouse-server, config root
// <yandex>); newer releases ship one `clickhouse` binary (root <clickhouse>).
// Both are supported.
//
// For cluster mode it also runs a local replicated, sharded cluster:
// StartZooKeeper runs a private ZooKeeper (Debian's zookeeper package, the
// coordination service ClickHouse 18.16 replicates through), and
// StartCluster runs shards x replicas servers on it, each configured with
// the cluster in remote_servers, its {shard} and {replica} macros and an
// interserver port. Kill and Restart of one replica are for fault tests.
package chserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// Timeouts. A private 18.16 server is ready in about 0.3 s; the generous
// limits are for loaded CI machines running many test binaries at once.
const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
	lockTimeout  = 15 * time.Second
	maxAttempts  = 3
)

// Options configures Start.
type Options struct {
	// Dir holds config, data and logs. It is created if missing and reused
	// as-is: starting on the same Dir again sees the earlier data.
	Dir string
	// TCPPort is the native-protocol port; 0 picks a free one.
	TCPPort int
	// HTTPPort is the HTTP interface port; 0 picks a free one.
	HTTPPort int
	// Logger receives start and stop events; nil discards them.
	Logger *slog.Logger
	// Binary overrides the server binary found by LookPath. A binary named
	// `clickhouse` is run as `clickhouse server`.
	Binary string
	// Replica, when set, makes the server one replica of a cluster
	// (StartCluster fills it in). Its ports must be fixed: the other
	// servers name them.
	Replica *ReplicaConfig
}

// Server is a running ClickHouse child process.
type Server struct {
	cmd      *exec.Cmd
	addr     string
	httpAddr string
	dataDir  string
	logger   *slog.Logger

	done    chan struct{} // closed when the process has exited
	waitErr error         // the process's exit status, set before done closes

	stopOnce sync.Once
	stopErr  error
}

// Start launches a server and waits until it answers a native-protocol
// ping. If a port it picked was taken in the meantime, it retries on new
// ports. If the previous server on Dir is still shutting down (its parent
// was killed and it got SIGTERM), it waits for that server to exit first.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("clickhouse server: Options.Dir is required")
	}
	cand, err := lookPathFor(opts.Binary)
	if err != nil {
		return nil, err
	}
	l, err := newLayout(opts.Dir)
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "clickhouse")

	var lastErr error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		s, err := start(ctx, cand, l, opts, logger)
		switch {
		case err == nil:
			return s, nil
		case pickedPortTaken(err, opts):
			logger.Warn("port taken before the server bound it, retrying", "attempt", attempt, "err", err)
		case errors.Is(err, errDirLocked):
			if werr := waitForLockHolder(ctx, l, logger); werr != nil {
				return nil, werr
			}
		default:
			return nil, err
		}
		lastErr = err
	}
	return nil, lastErr
}

// pickedPortTaken reports whether err is a bind failure on a port Start
// picked itself (not one fixed in opts), which a retry on new ports fixes.
func pickedPortTaken(err error, opts Options) bool {
	var inUse portInUseError
	return errors.As(err, &inUse) && inUse.port != opts.TCPPort && inUse.port != opts.HTTPPort
}

// newLayout resolves Dir to an absolute path without symlinks, because the
// readiness check compares it with the data path the server reports.
func newLayout(dir string) (layout, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return layout{}, fmt.Errorf("create clickhouse dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return layout{}, fmt.Errorf("resolve clickhouse dir: %w", err)
	}
	l := layout{dir: abs}
	return l, l.mkdirs()
}

// Addr is the native-protocol address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.addr }

// HTTPAddr is the HTTP interface address, for curl while debugging.
func (s *Server) HTTPAddr() string { return s.httpAddr }

// Done is closed when the server process exits, whether by Stop or not.
// `tally all` watches it to shut down instead of running without storage.
func (s *Server) Done() <-chan struct{} { return s.done }

// Wait blocks until the process exits and returns its exit status.
func (s *Server) Wait() error {
	<-s.done
	return s.waitErr
}

// Stop sends SIGTERM so the server shuts down cleanly, and SIGKILLs its
// process group if it is still running after 15 s. It is safe to call more
// than once and from several goroutines; every call returns the same result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

// Kill ends the server with SIGKILL, as a crash would: nothing is flushed
// and the status file stays behind (the next Start on Dir does not mind).
// It waits for the process to exit. Stop after Kill returns nil.
func (s *Server) Kill() error {
	s.stopOnce.Do(func() {
		select {
		case <-s.done:
			return
		default:
		}
		if err := kill(s.cmd.Process.Pid); err != nil {
			s.stopErr = fmt.Errorf("kill clickhouse server (pid %d): %w", s.cmd.Process.Pid, err)
		}
		<-s.done
	})
	return s.stopErr
}

func (s *Server) stop() error {
	pid := s.cmd.Process.Pid
	select {
	case <-s.done:
		// It exited on its own: report why, since nobody asked it to.
		if s.waitErr != nil {
			return fmt.Errorf("clickhouse server (pid %d) had exited: %w", pid, s.waitErr)
		}
		return nil
	default:
	}
	began := time.Now()
	if !terminateAndWait(pid, s.done, s.logger) {
		return fmt.Errorf("clickhouse server (pid %d) ignored SIGTERM for %s; killed", pid, stopTimeout)
	}
	s.logger.Info("clickhouse stopped", "pid", pid, "took", time.Since(began).Round(time.Millisecond))
	if s.waitErr != nil {
		return fmt.Errorf("clickhouse server (pid %d) exited: %w", pid, s.waitErr)
	}
	return nil
}

package chserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrZooKeeperNotFound is returned when Java or ZooKeeper's jar is missing.
// ClickHouse 18.16 keeps replication state and ON CLUSTER DDL queues in
// ZooKeeper, so a local cluster cannot run without it.
var ErrZooKeeperNotFound = errors.New("ZooKeeper not found: install it with " +
	"`apt-get install -y zookeeper` (Debian; it brings Java), or run `make deps`")

// zooKeeperJars are where Debian's zookeeper package puts the server; its
// manifest's Class-Path names every dependency but no logging backend.
// slf4j-simple (a dependency of the package) is added when present so the
// server's warnings reach console.log instead of SLF4J's no-op logger.
var (
	zooKeeperJars = []string{"/usr/share/java/zookeeper.jar"}
	slf4jSimple   = "/usr/share/java/slf4j-simple.jar"
)

// ZooKeeper is a private standalone ZooKeeper server run as a child
// process, for a local ClickHouse cluster.
type ZooKeeper struct {
	cmd    *exec.Cmd
	addr   string
	logger *slog.Logger

	done    chan struct{}
	waitErr error

	stopOnce sync.Once
	stopErr  error
}

// StartZooKeeper starts a standalone ZooKeeper with its data under dir on a
// free loopback port and returns once it serves requests. The same dir can
// be started again and keeps its data (the port may differ).
func StartZooKeeper(ctx context.Context, dir string, logger *slog.Logger) (*ZooKeeper, error) {
	java, classpath, err := lookZooKeeper()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "zookeeper")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("create zookeeper dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return nil, fmt.Errorf("resolve zookeeper dir: %w", err)
	}
	return retryOnPortInUse(logger, "port taken before zookeeper bound it, retrying", func() (*ZooKeeper, error) {
		return startZooKeeper(ctx, java, classpath, abs, logger)
	})
}

// lookZooKeeper finds java and the classpath that runs ZooKeeper's server.
func lookZooKeeper() (java, classpath string, err error) {
	java, err = exec.LookPath("java")
	if err != nil {
		if !isExecutable("/usr/bin/java") {
			return "", "", fmt.Errorf("%w: no java on PATH", ErrZooKeeperNotFound)
		}
		java = "/usr/bin/java"
	}
	var cp []string
	for _, jar := range zooKeeperJars {
		if _, err := os.Stat(jar); err == nil {
			cp = append(cp, jar)
			break
		}
	}
	if len(cp) == 0 {
		return "", "", fmt.Errorf("%w: no %s", ErrZooKeeperNotFound, strings.Join(zooKeeperJars, " or "))
	}
	if _, err := os.Stat(slf4jSimple); err == nil {
		cp = append(cp, slf4jSimple)
	}
	return java, strings.Join(cp, ":"), nil
}

func startZooKeeper(ctx context.Context, java, classpath, dir string, logger *slog.Logger) (*ZooKeeper, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	port := ports[0]
	cfgPath := filepath.Join(dir, "zoo.cfg")
	// Standalone mode (no server.N lines). tickTime 500 ms lets ClickHouse
	// ask for session timeouts from 1 s to 10 s (2 to 20 ticks), so a killed
	// replica's session, and its is_active node, expires soon enough for a
	// restart test. The admin server is an HTTP server on 8080: off.
	// The four-letter words are how readiness is checked.
	cfg := fmt.Sprintf("tickTime=500\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"+
		"maxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=*\n"+
		"autopurge.purgeInterval=1\nautopurge.snapRetainCount=3\n",
		filepath.Join(dir, "data"), port)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("write zookeeper config: %w", err)
	}
	consolePath := filepath.Join(dir, "console.log")
	console, err := os.OpenFile(consolePath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open zookeeper console log: %w", err)
	}
	defer console.Close()
	offset := fileSize(consolePath)

	// A small serial-GC heap: the JVM's defaults (a quarter of RAM, one GC
	// thread per core) are sized for a dedicated machine, not for a test
	// helper sharing two cores with four ClickHouse servers.
	cmd := exec.Command(java, "-Xms32m", "-Xmx512m", "-XX:+UseSerialGC",
		"-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-cp", classpath, "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfgPath)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = sysProcAttr()
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start zookeeper (%s): %w", java, err)
	}
	zk := &ZooKeeper{
		cmd:    cmd,
		addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		logger: logger,
		done:   make(chan struct{}),
	}
	go func() {
		zk.waitErr = cmd.Wait()
		close(zk.done)
	}()
	if err := zk.waitReady(ctx, filepath.Join(dir, "data")); err != nil {
		_ = zk.Stop()
		msg := fmt.Sprintf("zookeeper (%s) failed to start: %v", strings.Join(cmd.Args, " "), err)
		out := tailSince(consolePath, offset, 2048)
		if out != "" {
			msg += "\nconsole log:\n" + out
		}
		if strings.Contains(out, "Address already in use") || errors.Is(err, errPortInUse) {
			return nil, fmt.Errorf("%s: %w", msg, portInUseError{port: port})
		}
		return nil, errors.New(msg)
	}
	logger.Info("zookeeper ready", "addr", zk.addr, "dir", dir, "pid", cmd.Process.Pid,
		"took", time.Since(began).Round(time.Millisecond))
	return zk, nil
}

// Addr is the client address, "127.0.0.1:PORT".
func (zk *ZooKeeper) Addr() string { return zk.addr }

// Done is closed when the process exits.
func (zk *ZooKeeper) Done() <-chan struct{} { return zk.done }

// Stop sends SIGTERM and waits; after 15 s it SIGKILLs the process group.
// Safe to call more than once; every call returns the same result.
func (zk *ZooKeeper) Stop() error {
	zk.stopOnce.Do(func() { zk.stopErr = zk.stop() })
	return zk.stopErr
}

func (zk *ZooKeeper) stop() error {
	pid := zk.cmd.Process.Pid
	select {
	case <-zk.done:
		if zk.waitErr != nil {
			return fmt.Errorf("zookeeper (pid %d) had exited: %w", pid, zk.waitErr)
		}
		return nil
	default:
	}
	if !terminateAndWait(pid, zk.done, zk.logger) {
		return fmt.Errorf("zookeeper (pid %d) ignored SIGTERM for %s; killed", pid, stopTimeout)
	}
	// The JVM exits with 143 (128+SIGTERM) after its shutdown hooks ran:
	// that is a clean stop, not a failure.
	return nil
}

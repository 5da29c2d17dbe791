package chserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

var (
	// errPortInUse: the server could not bind, or another server answered
	// on its port. Start retries on fresh ports when it picked the port.
	errPortInUse = errors.New("port already in use")
	// errDirLocked: another live server holds Dir's status file lock.
	errDirLocked = errors.New("data directory locked by another clickhouse server")
)

// portInUseError says which port was taken, so Start retries only when that
// port was one it picked: a fixed port will not free itself.
type portInUseError struct{ port int }

func (e portInUseError) Error() string        { return fmt.Sprintf("port %d already in use", e.port) }
func (e portInUseError) Is(target error) bool { return target == errPortInUse }

// bindFailure matches 18.16's "Net Exception: Address already in use: 127.0.0.1:PORT".
var bindFailure = regexp.MustCompile(`Address already in use: \S*:(\d+)`)

// start runs one attempt: write config, launch, wait for readiness.
func start(ctx context.Context, cand candidate, l layout, opts Options, logger *slog.Logger) (*Server, error) {
	tcpPort, httpPort := opts.TCPPort, opts.HTTPPort
	if tcpPort == 0 || httpPort == 0 {
		ports, err := FreePorts(3)
		if err != nil {
			return nil, err
		}
		// A third port covers the case where a fixed port equals a picked one.
		ports = slices.DeleteFunc(ports, func(p int) bool { return p == tcpPort || p == httpPort })
		if tcpPort == 0 {
			tcpPort, ports = ports[0], ports[1:]
		}
		if httpPort == 0 {
			httpPort = ports[0]
		}
	}
	if err := l.writeConfig(cand.configRoot(), tcpPort, httpPort, opts.Replica); err != nil {
		return nil, err
	}
	console, err := os.OpenFile(l.console(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse console log: %w", err)
	}
	defer console.Close() // the child keeps its own descriptor

	// Logs are appended across runs; remember where this run starts so a
	// failure quotes only its own lines.
	errOffset, consoleOffset := fileSize(l.errorLog()), fileSize(l.console())

	args := append(slices.Clone(cand.args), "--config-file="+l.config())
	cmd := exec.Command(cand.bin, args...)
	cmd.Dir = l.dir
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = sysProcAttr()
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cand.bin, err)
	}
	s := &Server{
		cmd:      cmd,
		addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(tcpPort)),
		httpAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
		dataDir:  l.data(),
		logger:   logger,
		done:     make(chan struct{}),
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()

	if err := s.waitReady(ctx, l); err != nil {
		_ = s.Stop()
		errLog := tailSince(l.errorLog(), errOffset, 2048)
		if errLog == "" {
			errLog = tailSince(l.console(), consoleOffset, 2048)
		}
		return nil, classify(err, errLog, cmd.Args)
	}
	logger.Info("clickhouse ready", "addr", s.addr, "http", s.httpAddr, "dir", l.dir,
		"pid", cmd.Process.Pid, "took", time.Since(began).Round(time.Millisecond))
	return s, nil
}

// classify turns a failed start into an error that says why, quoting the
// server's error log, and tags the causes Start knows how to recover from.
func classify(err error, errLog string, argv []string) error {
	msg := fmt.Sprintf("clickhouse server (%s) failed to start: %v", strings.Join(argv, " "), err)
	if errLog != "" {
		msg += "\nerror log:\n" + errLog
	}
	var inUse portInUseError
	switch {
	case errors.As(err, &inUse):
		return fmt.Errorf("%s: %w", msg, inUse)
	case bindFailure.MatchString(errLog):
		port, _ := strconv.Atoi(bindFailure.FindStringSubmatch(errLog)[1])
		return fmt.Errorf("%s: %w", msg, portInUseError{port: port})
	case strings.Contains(errLog, "Another server instance in same directory"):
		return fmt.Errorf("%s: %w", msg, errDirLocked)
	}
	return errors.New(msg)
}

// waitReady polls until the server answers as itself, exits, or the
// readiness timeout passes.
func (s *Server) waitReady(ctx context.Context, l layout) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := checkOwnServer(ctx, s.addr, l)
		if err == nil || errors.Is(err, errPortInUse) {
			return err
		}
		select {
		case <-s.done:
			return fmt.Errorf("process exited (%v)", s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w (last ping: %v)", readyTimeout, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// checkOwnServer pings addr over the native protocol and checks that the
// server answering keeps its data under our Dir. Without the second check a
// server that lost the port race to another ClickHouse (another test
// binary's) would look ready while every query went to the wrong server.
func checkOwnServer(ctx context.Context, addr string, l layout) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		Protocol:    clickhouse.Native,
		DialTimeout: time.Second,
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Ping(ctx); err != nil {
		return err
	}
	var metadataPath string
	row := conn.QueryRow(ctx, "SELECT metadata_path FROM system.databases WHERE name = 'system'")
	if err := row.Scan(&metadataPath); err != nil {
		return fmt.Errorf("ask server for its data path: %w", err)
	}
	if !strings.HasPrefix(metadataPath, l.data()) {
		_, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		return fmt.Errorf("%s is served by another ClickHouse (metadata in %s): %w", addr, metadataPath, portInUseError{port: p})
	}
	return nil
}

// waitForLockHolder waits for the server named in Dir's status file to
// exit. That happens when `tally all` is restarted right after being
// killed: the kernel sent the old server SIGTERM, and it is still flushing.
func waitForLockHolder(ctx context.Context, l layout, logger *slog.Logger) error {
	b, err := os.ReadFile(l.status())
	if err != nil {
		return fmt.Errorf("%w: read %s: %v", errDirLocked, l.status(), err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(first, "PID:")))
	if err != nil {
		return fmt.Errorf("%w: no pid in %s: %q", errDirLocked, l.status(), first)
	}
	logger.Warn("waiting for the previous clickhouse server on this directory to exit", "pid", pid, "dir", l.dir)
	deadline := time.Now().Add(lockTimeout)
	for alive(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("clickhouse server pid %d still holds %s after %s; stop it first: %w",
				pid, l.dir, lockTimeout, errDirLocked)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

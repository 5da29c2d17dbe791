package chserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

func connect(t *testing.T, addr string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Protocol: clickhouse.Native})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.Ping(context.Background()); err != nil {
		t.Fatalf("ping %s: %v", addr, err)
	}
	return conn
}

func countRows(t *testing.T, conn driver.Conn) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM default.readings").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRestartKeepsData covers the life of the `all` command's server:
// start, write, stop, start again on the same directory, read.
func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()

	s := startServer(t, Options{Dir: dir})
	conn := connect(t, s.Addr())
	if err := conn.Exec(ctx, "CREATE TABLE default.readings (id UInt64, meter String) ENGINE = MergeTree ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO default.readings (id, meter)")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := batch.Append(uint64(i), "api_calls"); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	if got := countRows(t, conn); got != 100 {
		t.Fatalf("count = %d, want 100", got)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}

	s2 := startServer(t, Options{Dir: dir})
	if got := countRows(t, connect(t, s2.Addr())); got != 100 {
		t.Fatalf("after restart count = %d, want 100", got)
	}
}

// TestRestartAfterKill checks that the status file a SIGKILLed server
// leaves behind does not block the next start.
func TestRestartAfterKill(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, Options{Dir: dir})
	if err := kill(s.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	<-s.Done()
	if _, err := os.Stat(filepath.Join(dir, "data", "status")); err != nil {
		t.Logf("no stale status file after kill -9 (%v); test still checks restart", err)
	}
	s2 := startServer(t, Options{Dir: dir})
	connect(t, s2.Addr())
}

// TestStartWaitsForPreviousServer starts a second server on a directory
// whose first server is still running and stopping soon, as when `all` is
// restarted right after its parent was killed.
func TestStartWaitsForPreviousServer(t *testing.T) {
	dir := t.TempDir()
	first := startServer(t, Options{Dir: dir})
	stopped := make(chan error, 1)
	go func() {
		time.Sleep(time.Second)
		stopped <- first.Stop()
	}()
	second := startServer(t, Options{Dir: dir})
	if err := <-stopped; err != nil {
		t.Fatalf("stop first: %v", err)
	}
	connect(t, second.Addr())
}

func TestFixedPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	_, err = Start(context.Background(), Options{Dir: t.TempDir(), TCPPort: port})
	if !errors.Is(err, errPortInUse) {
		t.Fatalf("Start on a taken fixed port: err = %v, want errPortInUse", err)
	}
}

func TestMissingBinary(t *testing.T) {
	_, err := Start(context.Background(), Options{Dir: t.TempDir(), Binary: "no-such-clickhouse-binary"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

func TestLookPath(t *testing.T) {
	bin, args, err := LookPath()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(bin) == "clickhouse" && (len(args) != 1 || args[0] != "server") {
		t.Fatalf("single binary %s needs the server subcommand, got %q", bin, args)
	}
}

// TestForeignServerIsNotReady: a server that answers on our port but keeps
// its data elsewhere is another instance that won the port race.
func TestForeignServerIsNotReady(t *testing.T) {
	s := startServer(t, Options{Dir: t.TempDir()})
	other, err := newLayout(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := checkOwnServer(context.Background(), s.Addr(), other); !errors.Is(err, errPortInUse) {
		t.Fatalf("checkOwnServer against a foreign server: err = %v, want errPortInUse", err)
	}
}

func TestClassifyBindFailure(t *testing.T) {
	errLog := "2026.11.22 02:34:41.089287 [ 1 ] {} <Error> Application: Net Exception: Address already in use: 127.0.0.1:18123"
	err := classify(errors.New("process exited"), errLog, []string{"clickhouse-server"})
	if !pickedPortTaken(err, Options{}) {
		t.Fatalf("bind failure on a picked port should be retried: %v", err)
	}
	if pickedPortTaken(err, Options{HTTPPort: 18123}) {
		t.Fatalf("bind failure on a fixed port must not be retried: %v", err)
	}
	locked := "<Error> Application: DB::Exception: Cannot lock file /d/data/status. Another server instance in same directory is already running."
	if err := classify(errors.New("process exited"), locked, nil); !errors.Is(err, errDirLocked) {
		t.Fatalf("lock failure: err = %v, want errDirLocked", err)
	}
}

// TestHelperParent is not a test on its own: TestServerDiesWithParent runs
// the test binary again with this test selected, as a parent to kill.
func TestHelperParent(t *testing.T) {
	dir := os.Getenv("CHSERVER_HELPER_DIR")
	if dir == "" {
		return
	}
	s := startServer(t, Options{Dir: dir})
	fmt.Printf("PID %d\n", s.cmd.Process.Pid)
	select {} // wait to be killed
}

// TestServerDiesWithParent kills a parent with SIGKILL, so it cannot call
// Stop, and expects Pdeathsig to take the server down with it.
func TestServerDiesWithParent(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Pdeathsig is Linux-only")
	}
	parent := exec.Command(os.Args[0], "-test.run=^TestHelperParent$", "-test.timeout=2m")
	parent.Env = append(os.Environ(), "CHSERVER_HELPER_DIR="+t.TempDir())
	parent.Stderr = os.Stderr
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = parent.Process.Kill()
		t.Fatalf("helper did not report its server: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "PID ")))
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	_ = parent.Process.Kill()
	_ = parent.Wait()
	deadline := time.Now().Add(stopTimeout)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = kill(pid)
			t.Fatalf("server pid %d outlived its killed parent by %s", pid, stopTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

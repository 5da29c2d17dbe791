// Package testenv gives integration tests the real infrastructure the
// pipeline runs on: one private ClickHouse server per test binary, a fresh
// database per test, and an in-process Kafka-protocol broker (franz-go's
// kfake, one broker or several) per test. Tests of cluster mode get one
// shared 2 shards x 2 replicas ClickHouse cluster on a private ZooKeeper
// per test binary (Cluster, NewClusterDatabase). Nothing is mocked and
// nothing is skipped: when ClickHouse or ZooKeeper is not installed, tests
// fail with the command that installs it.
//
// A package whose tests use ClickHouse calls Main from its TestMain, so the
// shared server is stopped and its directory removed when the tests end:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
package testenv

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/chserver"
)

// EnvClickHouseAddr names a running ClickHouse (native protocol, user
// default, no password) to use instead of starting one, e.g. to run the
// tests against ClickHouse 24 while the machine's own server is 18.16.
const EnvClickHouseAddr = "TALLY_TEST_CLICKHOUSE_ADDR"

// shared is the one ClickHouse server of this test binary. Starting a
// server costs about 0.3 s and 100 MB; one per test would add up, and
// tests are isolated by database instead.
var shared struct {
	once sync.Once
	addr string
	err  error

	mu     sync.Mutex // guards server and dir against Main's shutdown
	server *chserver.Server
	dir    string
}

// Main runs the tests, then stops the shared ClickHouse server (and the
// shared cluster, if a test used one) and removes their directories, and
// exits with the tests' status. Test binaries have no other hook that runs
// after the last test. Without Main the servers still die with the test
// binary (Pdeathsig), but their temporary directories stay.
//
// stops are run first, in order: what the package's tests started on
// top of these (a `tally all` of StartTallyAll, say).
func Main(m *testing.M, stops ...func() error) {
	code := m.Run()
	for _, stop := range append(stops, stopShared, stopSharedCluster, stopTallyBinary) {
		if err := stop(); err != nil {
			fmt.Fprintln(os.Stderr, "testenv:", err)
		}
	}
	os.Exit(code)
}

// sharedClickHouse starts the shared server once; every later call gets the
// same address or the same error.
func sharedClickHouse() (string, error) {
	shared.once.Do(func() {
		if addr := os.Getenv(EnvClickHouseAddr); addr != "" {
			shared.addr = addr
			return
		}
		shared.addr, shared.err = startShared()
	})
	return shared.addr, shared.err
}

func startShared() (string, error) {
	if _, _, err := chserver.LookPath(); err != nil {
		return "", fmt.Errorf("%w (for tests: run `make deps`, or set %s to a running server)", err, EnvClickHouseAddr)
	}
	dir, err := os.MkdirTemp("", "tally-test-clickhouse-")
	if err != nil {
		return "", fmt.Errorf("create clickhouse test dir: %w", err)
	}
	// A minute, not chserver's 30 s readiness alone: `go test ./...` starts
	// one server per package at once on a small CI machine.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := chserver.Start(ctx, chserver.Options{
		Dir:    dir,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("start test clickhouse: %w", err)
	}
	shared.mu.Lock()
	shared.server, shared.dir = srv, dir
	shared.mu.Unlock()
	return srv.Addr(), nil
}

func stopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.server == nil {
		return nil
	}
	err := shared.server.Stop()
	if rmErr := os.RemoveAll(shared.dir); rmErr != nil && err == nil {
		err = rmErr
	}
	shared.server = nil
	return err
}

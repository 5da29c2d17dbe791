package chserver

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

func startZooKeeperT(t *testing.T, dir string) *ZooKeeper {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	zk, err := StartZooKeeper(ctx, dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = zk.Stop() })
	return zk
}

// TestZooKeeperStartStop starts a private ZooKeeper, checks that it
// serves, stops it, and starts it again on the same directory.
func TestZooKeeperStartStop(t *testing.T) {
	dir := t.TempDir()
	zk := startZooKeeperT(t, dir)
	srvr, err := fourLetterWord(context.Background(), zk.Addr(), "srvr")
	if err != nil || !strings.Contains(srvr, "Mode: standalone") {
		t.Fatalf("srvr = %q, %v; want Mode: standalone", srvr, err)
	}
	if err := zk.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	select {
	case <-zk.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	zk2 := startZooKeeperT(t, dir)
	if _, err := fourLetterWord(context.Background(), zk2.Addr(), "srvr"); err != nil {
		t.Fatal(err)
	}
}

func TestZooKeeperMissing(t *testing.T) {
	saved := zooKeeperJars
	zooKeeperJars = []string{"/nonexistent/zookeeper.jar"}
	t.Cleanup(func() { zooKeeperJars = saved })
	_, err := StartZooKeeper(context.Background(), t.TempDir(), nil)
	if !errors.Is(err, ErrZooKeeperNotFound) || !strings.Contains(err.Error(), "apt-get install -y zookeeper") {
		t.Fatalf("err = %v, want ErrZooKeeperNotFound naming the apt-get command", err)
	}
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

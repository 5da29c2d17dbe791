package chserver

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// TestSyncData: SyncData covers the directory the server keeps its parts
// in, works while inserts are written and after Stop, and reports a data
// directory it cannot sync (so the broker keeps its copy). That the pages
// reach the disk is syncfs(2)'s promise; a test cannot cut the power.
func TestSyncData(t *testing.T) {
	ctx := context.Background()
	s := startServer(t, Options{Dir: t.TempDir()})
	conn := connect(t, s.Addr())
	if err := conn.Exec(ctx, "CREATE TABLE default.readings (id UInt64, meter String) ENGINE = MergeTree ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "INSERT INTO default.readings (id, meter) SELECT number, 'api_calls' FROM system.numbers LIMIT 1000"); err != nil {
		t.Fatal(err)
	}
	var partPath string
	if err := conn.QueryRow(ctx, "SELECT path FROM system.parts WHERE database = 'default' AND table = 'readings' AND active LIMIT 1").Scan(&partPath); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(partPath, s.DataDir()) {
		t.Fatalf("the inserted part is in %s, outside DataDir %s: SyncData would not cover it", partPath, s.DataDir())
	}
	if err := s.SyncData(); err != nil {
		t.Fatalf("SyncData: %v", err)
	}
	if err := fsyncTree(s.DataDir()); err != nil { // the fallback outside Linux
		t.Fatalf("fsyncTree: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.SyncData(); err != nil {
		t.Fatalf("SyncData after Stop: %v", err)
	}

	gone := &Server{dataDir: filepath.Join(t.TempDir(), "missing"), logger: slog.New(slog.DiscardHandler)}
	if err := gone.SyncData(); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SyncData of a missing data dir: %v, want a not-exist error", err)
	}
	if err := fsyncTree(gone.dataDir); err == nil {
		t.Error("fsyncTree of a missing dir: no error")
	}
}

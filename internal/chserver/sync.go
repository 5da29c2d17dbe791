package chserver

import (
	"fmt"
	"time"
)

// SyncData makes everything the server wrote to its data directory so far
// durable, and returns once it is on disk.
//
// ClickHouse 18.16 never fsyncs the parts an insert writes (it has no
// fsync_after_insert; only fsync_metadata): when an insert returns, the part
// may exist only in the page cache, and a power cut loses it. `tally all`
// calls SyncData before its embedded broker deletes the records those parts
// came from. On Linux it is one syncfs(2) of the data directory's file
// system; elsewhere every file and directory under it is fsynced. It works
// on a stopped server too, and is safe to call concurrently with inserts:
// pages dirtied after the call began may or may not be written.
func (s *Server) SyncData() error {
	began := time.Now()
	if err := syncDir(s.dataDir); err != nil {
		return fmt.Errorf("sync clickhouse data dir %s: %w", s.dataDir, err)
	}
	s.logger.Debug("clickhouse data synced", "dir", s.dataDir, "took", time.Since(began))
	return nil
}

// DataDir is where the server keeps its tables (the path of its config).
func (s *Server) DataDir() string { return s.dataDir }

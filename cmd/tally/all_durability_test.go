package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/tally-oss/tally/internal/chserver"
)

// TestStoppedKeepsMarkerWhenSyncFails: a stop whose sync of ClickHouse's
// data failed must keep the run marker, since the marker is what makes the
// next start after a reboot replay the broker's records; without it a power
// cut after this stop loses what the page cache held (the broker's copy
// may already be trimmed).
func TestStoppedKeepsMarkerWhenSyncFails(t *testing.T) {
	dir := t.TempDir()
	d := newDevDurability(dir)
	d.srv = &chserver.Server{} // no data dir: SyncData fails
	if err := d.srv.SyncData(); err == nil {
		t.Fatal("SyncData of a server without a data dir succeeded; the test needs a failing sync")
	}
	if err := os.WriteFile(d.marker, []byte("boot\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.running = true
	d.stopped(slog.New(slog.DiscardHandler))
	if _, err := os.Stat(filepath.Join(dir, runMarker)); err != nil {
		t.Fatalf("the run marker is gone after a stop whose sync failed (%v): a power cut now replays nothing", err)
	}
}

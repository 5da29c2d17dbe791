package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/tally-oss/tally/internal/chserver"
	"github.com/tally-oss/tally/internal/devstack"
)

// runMarker is the file in the data dir that says `tally all` is running
// (devstack.MarkRunning): after a power cut it is what tells the next start
// to replay what ClickHouse may have lost.
const runMarker = "running"

// devDurability keeps what `tally all` acknowledged through a power cut
// when it runs both the embedded broker and a private ClickHouse 18.16,
// which never fsyncs inserted parts:
//   - before the broker deletes records the aggregator committed, their
//     ClickHouse parts are synced to disk (beforeTrim; the order is
//     explained in internal/devstack/trim.go);
//   - after a power cut, the group re-reads every record the broker still
//     holds, so what was committed but not yet synced is metered again
//     (start; replays change no result);
//   - a clean stop syncs ClickHouse's data before removing the run marker.
//
// With an external ClickHouse, the trim relies on that server's own
// durability; with an external Kafka there is no trim (nothing here runs).
type devDurability struct {
	marker  string
	srv     *chserver.Server // nil: an external ClickHouse
	running bool             // the run marker is ours to remove
}

func newDevDurability(dataDir string) *devDurability {
	return &devDurability{marker: filepath.Join(dataDir, runMarker)}
}

// beforeTrim is the embedded broker's BeforeTrim: a syncfs of the private
// ClickHouse's data dir, or nothing with an external ClickHouse.
func (d *devDurability) beforeTrim() func(context.Context) error {
	if d.srv == nil {
		return nil
	}
	return func(context.Context) error { return d.srv.SyncData() }
}

// start runs once the embedded broker is up and before the aggregator
// joins its group: it replays after a power cut, then notes this run.
func (d *devDurability) start(ctx context.Context, broker *devstack.Broker, topic, group string, logger *slog.Logger) error {
	if d.srv == nil {
		logger.Warn("the embedded broker deletes committed events; with an external ClickHouse a power cut of that server can lose them unless it fsyncs inserts (fsync_after_insert) or replicates")
		return nil
	}
	lost, err := devstack.PageCacheLost(d.marker)
	if err != nil {
		return err
	}
	if lost {
		replay, err := broker.RewindToLogStart(ctx, topic, group)
		if err != nil {
			return fmt.Errorf("replay after an unclean stop on an earlier boot: %w", err)
		}
		logger.Warn("the last run stopped without a clean shutdown on an earlier boot (power cut?): ClickHouse may have lost what it had not synced; re-reading every record the broker holds (replays are idempotent)",
			"topic", topic, "records_by_partition", replay)
	}
	if err := devstack.MarkRunning(d.marker); err != nil {
		return err
	}
	d.running = true
	return nil
}

// stopped runs after ClickHouse has stopped: the run marker goes only once
// ClickHouse's data is on disk, so a power cut right after a clean stop
// still replays what the page cache held.
func (d *devDurability) stopped(logger *slog.Logger) {
	if !d.running {
		return
	}
	// The marker stays when the sync failed: it is what makes the next
	// start after a reboot replay the broker's records.
	if err := d.srv.SyncData(); err != nil {
		logger.Error("could not make ClickHouse's data durable at stop; the next start after a reboot replays the broker's records", "err", err)
		return
	}
	if err := devstack.MarkStopped(d.marker); err != nil {
		logger.Error("could not remove the run marker; the next start after a reboot replays the broker's records (harmless)", "err", err)
	}
}

package devstack

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A power cut (or kernel crash, or reset) loses the page cache, and with
// it the parts ClickHouse 18.16 wrote since the last sync. The trim
// ordering (trim.go) keeps the broker's copy of every record those parts
// came from, but the group has committed past them, so the aggregator would
// never read them again. So `tally all` notes in its data dir on which boot
// it runs (MarkRunning) and removes the note after a clean stop, once
// ClickHouse's data is synced (MarkStopped). A note from another boot means
// the page cache of that boot was lost while `tally all` ran: before the
// aggregator starts, RewindToLogStart moves the group's commits back to the
// first record the broker still holds, and everything after it is metered
// again, which changes no result (the first version of an event wins).
// A kill -9 leaves the note of the same boot: the page cache survived it,
// and nothing is replayed.

// bootIDPath names the current boot on Linux. Elsewhere there is no boot
// id, and any unclean stop counts as a possible power cut.
var bootIDPath = "/proc/sys/kernel/random/boot_id"

func bootID() string {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// PageCacheLost reports whether the run noted in marker ended without a
// clean stop on an earlier boot (or on an unknown one): what it had not
// synced may be lost.
func PageCacheLost(marker string) (bool, error) {
	b, err := os.ReadFile(marker)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read run marker: %w", err)
	}
	noted, current := strings.TrimSpace(string(b)), bootID()
	return noted == "" || current == "" || noted != current, nil
}

// MarkRunning durably notes in marker that a run began on this boot.
func MarkRunning(marker string) error {
	tmp := marker + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("write run marker: %w", err)
	}
	_, werr := f.WriteString(bootID() + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("write run marker: %w", err)
	}
	if err := os.Rename(tmp, marker); err != nil {
		return fmt.Errorf("write run marker: %w", err)
	}
	return syncParent(marker)
}

// MarkStopped removes the note of a run that stopped cleanly. Call it only
// once ClickHouse's data is synced: a power cut right after a clean stop
// must still find what the page cache held.
func MarkStopped(marker string) error {
	if err := os.Remove(marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove run marker: %w", err)
	}
	return syncParent(marker)
}

func syncParent(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// RewindToLogStart commits, for every partition of topic where group has
// committed past the first record the broker holds, that first record's
// offset instead, and returns the rewound partitions with the number of
// records to replay. It must run while the group has no members (before
// the aggregator starts): it commits as a simple consumer.
//
// After a power cut the first record held is at or before the last trim,
// and every trim deleted only what a completed sync covered: the replay
// covers everything ClickHouse may have lost.
func (b *Broker) RewindToLogStart(ctx context.Context, topic, group string) (map[int32]int64, error) {
	info := b.cluster.GroupInfo(group)
	if info == nil {
		return nil, nil
	}
	replay := map[int32]int64{}
	rewind := kadm.Offsets{}
	for partition, commit := range info.Commits[topic] {
		p := b.cluster.PartitionInfo(topic, partition)
		if p == nil || commit.Offset <= p.LogStartOffset {
			continue
		}
		replay[partition] = commit.Offset - p.LogStartOffset
		rewind.Add(kadm.Offset{Topic: topic, Partition: partition, At: p.LogStartOffset, LeaderEpoch: -1})
	}
	if len(replay) == 0 {
		return nil, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		return nil, fmt.Errorf("rewind group %s on %s: %w", group, topic, err)
	}
	defer cl.Close()
	// kadm commits as a simple consumer (generation -1), which a group
	// without members accepts.
	if err := kadm.NewClient(cl).CommitAllOffsets(ctx, group, rewind); err != nil {
		return nil, fmt.Errorf("rewind group %s on %s to the broker's first records: %w", group, topic, err)
	}
	return replay, nil
}

package devstack

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestRewindAfterPowerLoss: a run noted on an earlier boot that never
// stopped cleanly makes the group re-read everything the broker still
// holds (at or before the last trim, so a superset of what ClickHouse may
// have lost with the page cache); a run noted on this boot (kill -9) or one
// that stopped cleanly replays nothing. A test cannot cut the power: it
// fakes the boot id and checks the bookkeeping and the rewind.
func TestRewindAfterPowerLoss(t *testing.T) {
	const topic, group = "events", "g"
	dir := t.TempDir()
	marker := filepath.Join(dir, "running")
	setBoot := func(id string) {
		if err := os.WriteFile(filepath.Join(dir, "boot_id"), []byte(id+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := bootIDPath
	bootIDPath = filepath.Join(dir, "boot_id")
	t.Cleanup(func() { bootIDPath = old })
	lost := func() bool {
		t.Helper()
		l, err := PageCacheLost(marker)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	setBoot("boot-1")
	if lost() {
		t.Fatal("first run ever: PageCacheLost")
	}
	if err := MarkRunning(marker); err != nil {
		t.Fatal(err)
	}
	opts := BrokerOptions{Dir: filepath.Join(dir, "kafka"), Port: freePort(t)}
	b := startBroker(t, opts)
	createTopic(t, b.Addrs(), topic, 1)
	produce(t, b.Addrs(), topic, 1000)
	consume(t, b.Addrs(), topic, group, 400)
	b.trimOnce(context.Background(), topic, group) // synced and trimmed up to 399 (the last committed record stays)
	consume(t, b.Addrs(), topic, group, 200)       // committed up to 600, not yet synced
	b.Close()

	b = startBroker(t, opts)
	if lost() {
		t.Fatal("restart on the same boot (kill -9): PageCacheLost, but the page cache survived")
	}

	setBoot("boot-2") // the power came back
	if !lost() {
		t.Fatal("a run of an earlier boot never stopped cleanly, and PageCacheLost is false")
	}
	replay, err := b.RewindToLogStart(context.Background(), topic, group)
	if err != nil {
		t.Fatal(err)
	}
	if replay[0] != 201 || len(replay) != 1 {
		t.Fatalf("rewind replays %v, want partition 0: 201 records", replay)
	}
	if got := committed(b, topic, group)[0]; got != 399 {
		t.Fatalf("after the rewind the group's commit is %d, want 399 (the broker's first record)", got)
	}
	then := consume(t, b.Addrs(), topic, group, 601)
	want := make([]string, 0, 601)
	for i := 399; i < 1000; i++ {
		want = append(want, recordValue(i))
	}
	if !slices.Equal(then, want) {
		t.Fatalf("after the rewind the group read %d records from %q, want %s..%s", len(then), then[0], want[0], want[len(want)-1])
	}

	if err := MarkRunning(marker); err != nil {
		t.Fatal(err)
	}
	if lost() {
		t.Fatal("PageCacheLost right after MarkRunning on this boot")
	}
	if err := MarkStopped(marker); err != nil {
		t.Fatal(err)
	}
	setBoot("boot-3")
	if lost() {
		t.Fatal("the last run stopped cleanly, and PageCacheLost is true on the next boot")
	}
	if err := MarkStopped(marker); err != nil {
		t.Fatalf("MarkStopped without a marker: %v", err)
	}
}

package devstack

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// helperBrokerEnv tells TestHelperBrokerProcess what to run:
// "<dir> <port> <syncWrites> <topic> <group>".
const helperBrokerEnv = "DEVSTACK_HELPER_BROKER"

// TestHelperBrokerProcess is not a test on its own: TestBrokerSurvivesKill
// runs the test binary again with this test selected, as a broker process
// to kill -9. It trims what the group commits, as `tally all` does.
func TestHelperBrokerProcess(t *testing.T) {
	spec := os.Getenv(helperBrokerEnv)
	if spec == "" {
		return
	}
	var (
		dir, topic, group string
		port              int
		syncWrites        bool
	)
	if _, err := fmt.Sscan(spec, &dir, &port, &syncWrites, &topic, &group); err != nil {
		t.Fatalf("%s=%q: %v", helperBrokerEnv, spec, err)
	}
	b, err := StartBroker(BrokerOptions{Dir: dir, Port: port, SyncWrites: syncWrites, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	go b.TrimCommitted(context.Background(), topic, group, 20*time.Millisecond)
	fmt.Println("READY")
	select {} // wait to be killed
}

// startBrokerProcess runs a broker in a child process and returns once it
// listens.
func startBrokerProcess(t *testing.T, dir string, port int, syncWrites bool, topic, group string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBrokerProcess$", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %v %s %s", helperBrokerEnv, dir, port, syncWrites, topic, group))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "READY" {
		t.Fatalf("broker process said %q (%v)", line, err)
	}
	return cmd
}

// firstOffset asks the broker for partition 0's log start offset.
func firstOffset(t *testing.T, addr, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := kafka.DialLeader(ctx, "tcp", addr, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	first, err := conn.ReadFirstOffset()
	if err != nil {
		t.Fatal(err)
	}
	return first
}

// TestBrokerSurvivesKill: what the broker acknowledged with RequireAll and
// the offsets a group committed survive a kill -9 of the broker's process,
// with and without SyncWrites (without, the writes sit in the page cache,
// which a killed process does not lose; SyncWrites is for power cuts).
// Trimming may be undone: kfake persists the log start offset only at a
// clean shutdown, so trimmed records can come back, but never past what the
// group committed and never fewer records than were acknowledged.
func TestBrokerSurvivesKill(t *testing.T) {
	for _, syncWrites := range []bool{false, true} {
		t.Run(fmt.Sprintf("SyncWrites=%v", syncWrites), func(t *testing.T) {
			const topic, group, total, firstRead = "events", "g", 1000, 400
			dir, port := t.TempDir(), freePort(t)
			addr := "127.0.0.1:" + strconv.Itoa(port)
			proc := startBrokerProcess(t, dir, port, syncWrites, topic, group)
			createTopic(t, []string{addr}, topic, 1)
			produce(t, []string{addr}, topic, total)
			first := consume(t, []string{addr}, topic, group, firstRead)
			deadline := time.Now().Add(10 * time.Second)
			for firstOffset(t, addr, topic) != firstRead-1 { // the last committed record stays
				if time.Now().After(deadline) {
					t.Fatalf("the broker process did not trim to %d: log start %d", firstRead-1, firstOffset(t, addr, topic))
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := proc.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = proc.Wait()

			b := startBroker(t, BrokerOptions{Dir: dir, Port: port, SyncWrites: syncWrites})
			if got := sum(committed(b, topic, group)); got != firstRead {
				t.Fatalf("after kill -9 the group has committed %d records, want %d", got, firstRead)
			}
			p := b.cluster.PartitionInfo(topic, 0)
			if p.HighWatermark != total {
				t.Fatalf("after kill -9 the topic holds %d records, want %d", p.HighWatermark, total)
			}
			if p.LogStartOffset > firstRead {
				t.Fatalf("after kill -9 the log starts at %d, past the committed %d", p.LogStartOffset, firstRead)
			}
			t.Logf("after kill -9: log start %d (was %d before the kill)", p.LogStartOffset, firstRead)
			then := consume(t, b.Addrs(), topic, group, total-firstRead)
			checkExactlyOnce(t, total, first, then)
		})
	}
}

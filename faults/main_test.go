package faults

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// envFull selects the full suite: every fault, larger loads.
const envFull = "TALLY_FAULTS"

// envBin names a tally binary to test instead of building ./cmd/tally.
const envBin = "TALLY_FAULTS_BIN"

// bin is the tally binary built once by TestMain.
var bin string

func full() bool { return os.Getenv(envFull) == "full" }

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run() // every test skips itself
	}
	if bin = os.Getenv(envBin); bin != "" {
		code := m.Run()
		printTable()
		return code
	}
	dir, err := os.MkdirTemp("", "tally-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "tally")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/tally")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/tally: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	printTable()
	return code
}

// row is one fault's line in the table.
type row struct {
	fault        string
	acknowledged int
	logRecords   int64 // records in the event topic: acknowledged events plus re-sends
	counted      int
	deadLetters  int
	duplicates   int
	lost         int
	wrongCells   int
	recovery     time.Duration // -1: never converged
	note         string
}

var table struct {
	mu   sync.Mutex
	rows []row
}

func report(r row) {
	table.mu.Lock()
	defer table.mu.Unlock()
	table.rows = append(table.rows, r)
}

// printTable prints every fault's figures; `make test-faults` runs with -v,
// so the table is shown whether or not the suite passed.
func printTable() {
	table.mu.Lock()
	defer table.mu.Unlock()
	if len(table.rows) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nfault suite (%s)\n", map[bool]string{true: "full", false: "short"}[full() || clusterFull()])
	fmt.Fprintf(&b, "%-20s %12s %10s %9s %12s %10s %6s %11s %9s  %s\n",
		"fault", "acknowledged", "in the log", "counted", "dead-letters", "duplicates", "lost", "wrong cells", "recovery", "note")
	for _, r := range table.rows {
		rec := "never"
		if r.recovery >= 0 {
			rec = r.recovery.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, "%-20s %12d %10d %9d %12d %10d %6d %11d %9s  %s\n",
			r.fault, r.acknowledged, r.logRecords, r.counted, r.deadLetters, r.duplicates, r.lost, r.wrongCells, rec, r.note)
	}
	fmt.Print(b.String())
}

package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"
)

// The benchmark harness runs every phase and its last line is the JSON
// report (with tiny loads: it checks the harness, not the figures, which
// belong to `make bench`).
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tally ingest and tally all")
	}
	bin := buildTallyBinary(t)
	cmd := exec.Command(bin, "bench", "-log.level=warn", "-bench.duration=300ms", "-bench.shapes=1x1,2x10",
		"-bench.gzip-shape=2x10", "-bench.nolinger-max-batch=10", "-bench.clickhouse-batch=500",
		"-bench.e2e-duration=2s", "-bench.e2e-rate=500", "-bench.e2e-shape=2x10",
		"-bench.query-events=20000",
		"-bench.memory-duration=2s", "-bench.memory-rate=200", "-bench.lag-duration=1s", "-bench.lag-rate=1000")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tally bench: %v\n%s\n%s", err, out, stderr.String())
	}
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	var rep benchReport
	if err := json.Unmarshal(lines[len(lines)-1], &rep); err != nil {
		t.Fatalf("last line is not the JSON report: %v\n%s", err, out)
	}
	if len(rep.Ingest) != 3 {
		t.Fatalf("%d ingest figures, want 3 (1x1, 2x10, 2x10 ndjson+gzip)\n%s", len(rep.Ingest), out)
	}
	for _, f := range rep.Ingest {
		if f.Events == 0 || f.Failed != 0 || f.Limit == 0 || f.NoLingerLimit == 0 {
			t.Errorf("%s: %d events accepted, %d requests failed, limit %v, no-linger limit %v", f.Name, f.Events, f.Failed, f.Limit, f.NoLingerLimit)
		}
	}
	if rep.ClickHouse == nil || rep.ClickHouse.Events == 0 {
		t.Errorf("clickhouse limit: %+v", rep.ClickHouse)
	}
	if e := rep.E2E; e == nil || !e.Exact || e.Events == 0 || e.Error != "" || len(e.Windows) == 0 || e.QueryablePerS == 0 {
		t.Errorf("end to end: %+v", rep.E2E)
	}
	if m := rep.Memory; m == nil || !m.Exact || m.Events == 0 || len(m.Samples) < 2 || m.Error != "" {
		t.Errorf("memory: %+v", rep.Memory)
	}
	if l := rep.Lag; l == nil || l.Events == 0 {
		t.Errorf("lag: %+v", rep.Lag)
	}
	if benchQuery != nil && (rep.Query == nil || rep.QueryError != "") {
		t.Errorf("query: %v %s", rep.Query, rep.QueryError)
	}
	if len(rep.Errors) != 0 {
		t.Errorf("errors: %v", rep.Errors)
	}
	t.Logf("\n%s", out)
}

package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"
)

// The benchmark harness runs end to end and its last line is the JSON
// report (with tiny loads: it checks the harness, not the figures, which
// belong to `make bench`).
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tally ingest and tally all")
	}
	bin := buildTallyBinary(t)
	cmd := exec.Command(bin, "bench", "-log.level=warn", "-bench.duration=300ms", "-bench.shapes=1x1,2x10",
		"-bench.gzip-shape=2x10", "-bench.e2e-duration=1s", "-bench.e2e-rate=500", "-bench.e2e-shape=2x10")
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
		if f.Events == 0 || f.Failed != 0 || f.Limit == 0 {
			t.Errorf("%s: %d events accepted, %d requests failed, limit %v", f.Name, f.Events, f.Failed, f.Limit)
		}
	}
	if rep.E2E == nil || !rep.E2E.Exact || rep.E2E.Events == 0 || rep.E2E.Error != "" {
		t.Errorf("end to end: %+v", rep.E2E)
	}
	t.Logf("\n%s", out)
}

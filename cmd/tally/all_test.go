package main

// Process-level tests of `tally all` as a user runs it: the built binary,
// a data dir, fixed ports, kill -9, SIGTERM and Ctrl-C. Unlike the
// pipeline tests, nothing here is wired in-process: `tally all` starts its
// own broker and ClickHouse server.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tally-oss/tally/internal/testenv"
)

// Deadlines of the process-level tests: generous, for a loaded 2-core CI
// machine running other test binaries at the same time.
const (
	allReadyTimeout = 60 * time.Second
	allUsageTimeout = 60 * time.Second
	allStopTimeout  = 30 * time.Second
	// allOrphanTimeout bounds how long ClickHouse may take to exit after
	// its parent was killed (Pdeathsig sends SIGTERM; it shuts down).
	allOrphanTimeout = 20 * time.Second
)

func TestAll(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the tally binary")
	}
	bin := buildTallyBinary(t)
	t.Run("KillRestartAndStop", func(t *testing.T) { testAllKillRestartAndStop(t, bin) })
	t.Run("GeneratedDevKey", func(t *testing.T) { testAllGeneratedDevKey(t, bin) })
	t.Run("ReplayAfterPowerCut", func(t *testing.T) { testAllReplayAfterPowerCut(t, bin) })
}

// testAllKillRestartAndStop: events accepted before a kill -9 count exactly
// once after a restart, ClickHouse never outlives `tally all`, and SIGTERM
// and SIGINT stop it cleanly with everything kept.
func testAllKillRestartAndStop(t *testing.T, bin string) {
	const devKey = "all-test-dev-key-0123456789abcdef"
	setup := newAllSetup(t, devKey)

	p := startAll(t, bin, setup)
	p.waitReady()
	p.createMeter(`{"key": "calls", "name": "API calls", "event_type": "api.call", "aggregation": "SUM", "value_property": "$.value"}`)
	// Half the events, then wait until the aggregator has committed some
	// of them (its metrics, not usage), then the other half and kill -9 at
	// once: the restart sees committed, possibly stored-but-uncommitted,
	// and unprocessed records.
	const events, perRequest = 2000, 250
	for first := 0; first < events/2; first += perRequest {
		p.postEvents(first, perRequest)
	}
	p.waitMetric("tally_aggregator_commits_total", func(v float64) bool { return v > 0 })
	for first := events / 2; first < events; first += perRequest {
		p.postEvents(first, perRequest)
	}
	chPID := p.clickhousePID()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.waitExit(allStopTimeout)
	began := time.Now()
	waitNoClickHouse(t, setup.dataDir, allOrphanTimeout)
	t.Logf("kill -9: clickhouse pid %d gone %s after its parent", chPID, time.Since(began).Round(time.Millisecond))

	began = time.Now()
	p = startAll(t, bin, setup)
	p.waitReady()
	p.waitUsage("calls", "200") // 2000 x 0.1: every accepted event once
	redelivered, series := p.metric("tally_aggregator_events_total")
	t.Logf("restart after kill -9: ready and usage complete in %s; records the aggregator processed after the restart: %v",
		time.Since(began).Round(time.Millisecond), series)
	if redelivered <= 0 || redelivered >= events {
		// At least the last request was not yet committed, and what was
		// committed before the kill is not delivered again.
		t.Errorf("after the restart the aggregator processed %v records, want between 1 and %d", redelivered, events-1)
	}

	p.stop(syscall.SIGTERM)

	p = startAll(t, bin, setup)
	p.waitReady()
	if code, body := p.do("GET", p.queryURL()+"/api/v1/meters/calls", devKey, nil); code != http.StatusOK {
		t.Fatalf("meter after restart: %d %s", code, body)
	}
	if got := p.usage("calls"); got != "200" {
		t.Fatalf("usage after a clean restart = %s, want 200", got)
	}
	if code, body := p.do("GET", p.queryURL()+"/api/v1/meters", "not-the-dev-key-0123456789", nil); code != http.StatusUnauthorized {
		t.Fatalf("unknown key: %d %s, want 401", code, body)
	}
	// The status reports tally all's own ingest and aggregator, which it
	// probes on the addresses they listen on.
	const components = `"components":[{"name":"query","ready":true,"checks":{"clickhouse":"ok"},"error":""},` +
		`{"name":"ingest","ready":true,"checks":{"kafka":"ok"},"error":""},` +
		`{"name":"aggregator","ready":true,"checks":{"clickhouse":"ok","consumer":"ok","kafka":"ok"},"error":""}]`
	status := func() string {
		_, body := p.do("GET", p.queryURL()+"/api/v1/status", devKey, nil)
		return string(body)
	}
	waitFor(t, func() bool { return strings.Contains(status(), components) },
		func() string { return "status: " + status() + "\nwant " + components })
	p.stop(syscall.SIGINT)
}

// testAllReplayAfterPowerCut: a run that never stopped, noted on an
// earlier boot, is taken for a power cut: ClickHouse may have lost what it
// had not synced, so the restart re-reads every event the embedded broker
// still holds before the aggregator resumes, and usage stays exact. A test
// cannot cut the power or reboot: it kills -9 and rewrites the boot id in
// the run marker. A clean stop removes the marker.
func testAllReplayAfterPowerCut(t *testing.T, bin string) {
	const devKey = "all-test-dev-key-0123456789abcdef"
	setup := newAllSetup(t, devKey)
	marker := filepath.Join(setup.dataDir, runMarker)

	p := startAll(t, bin, setup)
	p.waitReady()
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("tally all runs without its run marker: %v", err)
	}
	p.createMeter(`{"key": "calls", "name": "API calls", "event_type": "api.call", "aggregation": "SUM", "value_property": "$.value"}`)
	const events, perRequest = 1000, 250
	for first := 0; first < events; first += perRequest {
		p.postEvents(first, perRequest)
	}
	p.waitUsage("calls", "100")
	// Some events committed: without the replay the restart would not
	// read them again.
	p.waitMetric("tally_aggregator_commits_total", func(v float64) bool { return v > 0 })
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.waitExit(allStopTimeout)
	waitNoClickHouse(t, setup.dataDir, allOrphanTimeout)
	if err := os.WriteFile(marker, []byte("boot-before-the-power-cut\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	p = startAll(t, bin, setup)
	p.waitReady()
	if !strings.Contains(p.stderr.String(), "earlier boot") {
		t.Errorf("no replay after the power cut was logged:\n%s", p.stderr.String())
	}
	// The broker held all 1000 events (a crash undoes trims within a
	// segment), so all are read again, and each still counts once.
	p.waitMetric("tally_aggregator_events_total", func(v float64) bool { return v >= events })
	if got := p.usage("calls"); got != "100" {
		t.Fatalf("usage after the replay = %s, want 100", got)
	}
	p.stop(syscall.SIGTERM)
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("after a clean stop the run marker is still there (%v): the next start after a reboot would replay", err)
	}
}

// testAllGeneratedDevKey: without TALLY_DEV_API_KEY the first start makes a
// key, prints it and keeps it in the data dir; the next start uses it.
func testAllGeneratedDevKey(t *testing.T, bin string) {
	setup := newAllSetup(t, "")
	keyPattern := regexp.MustCompile(`tally_dev_[0-9a-f]{48}`)

	p := startAll(t, bin, setup)
	p.waitReady()
	key := keyPattern.FindString(p.stderr.String())
	if key == "" {
		t.Fatalf("no generated key on stderr:\n%s", p.stderr.String())
	}
	saved, err := os.ReadFile(filepath.Join(setup.dataDir, "dev-api-key"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(saved)) != key {
		t.Fatalf("dev-api-key holds %q, stderr printed %q", saved, key)
	}
	if code, body := p.do("GET", p.queryURL()+"/api/v1/meters", key, nil); code != http.StatusOK {
		t.Fatalf("generated key: %d %s", code, body)
	}
	p.stop(syscall.SIGTERM)

	p = startAll(t, bin, setup)
	p.waitReady()
	if got := keyPattern.FindAllString(p.stderr.String(), -1); len(got) == 0 || got[0] != key {
		t.Fatalf("second start printed keys %q, want the saved %q", got, key)
	}
	if code, body := p.do("GET", p.queryURL()+"/api/v1/meters", key, nil); code != http.StatusOK {
		t.Fatalf("saved key after restart: %d %s", code, body)
	}
	p.stop(syscall.SIGTERM)
}

// buildTallyBinary returns the tally binary, built once per test binary
// (testenv.TallyBinary) for every test that runs it.
func buildTallyBinary(t *testing.T) string {
	t.Helper()
	bin, err := testenv.TallyBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// allSetup is what stays the same across restarts: data dir, ports, key.
type allSetup struct {
	dataDir                               string
	api, ingest, query, aggregator, kafka int
	devKey                                string
}

func newAllSetup(t *testing.T, devKey string) allSetup {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir()) // as chserver resolves it
	if err != nil {
		t.Fatal(err)
	}
	return allSetup{
		dataDir: dir, devKey: devKey,
		api: allFreePort(t), ingest: allFreePort(t), query: allFreePort(t), aggregator: allFreePort(t), kafka: allFreePort(t),
	}
}

// allFreePort: each run of `tally all` in a test binds the same ports, so
// they come from below the kernel's ephemeral range, where the embedded
// ClickHouse's own free ports cannot land.
func allFreePort(t *testing.T) int {
	t.Helper()
	return testenv.StablePort(t)
}

// allProc is one run of `tally all`.
type allProc struct {
	t      *testing.T
	setup  allSetup
	cmd    *exec.Cmd
	stderr *testenv.SyncBuffer
	client *http.Client
	done   chan struct{} // closed when the process has exited
	err    error         // its exit status, set before done closes
}

// startAll starts `tally all` as a user would: data dir and dev key from
// the environment, ports as flags. Inherited TALLY_* variables are dropped
// so that the developer's own settings do not leak in.
func startAll(t *testing.T, bin string, s allSetup) *allProc {
	t.Helper()
	cmd := exec.Command(bin, "all",
		"-api.listen-addr=127.0.0.1:"+strconv.Itoa(s.api), // never make run's :8000
		"-ingest.listen-addr=127.0.0.1:"+strconv.Itoa(s.ingest),
		"-query.listen-addr=127.0.0.1:"+strconv.Itoa(s.query),
		"-aggregator.listen-addr=127.0.0.1:"+strconv.Itoa(s.aggregator),
		"-dev.kafka-port="+strconv.Itoa(s.kafka),
		"-ingest.max-event-age=87600h", // events carry fixed 2026 dates
		"-dev.trim-interval=1s",        // trims (and their syncs) happen within a test
	)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TALLY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "TALLY_DATA_DIR="+s.dataDir)
	if s.devKey != "" {
		cmd.Env = append(cmd.Env, "TALLY_DEV_API_KEY="+s.devKey)
	}
	p := &allProc{
		t: t, setup: s, cmd: cmd, stderr: &testenv.SyncBuffer{},
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}},
		done:   make(chan struct{}),
	}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	// If a grandchild ever held the output pipe, Wait would hang without it.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		// Whatever the test did, leave no server behind.
		if pids := clickhouseLeft(t, s.dataDir, allOrphanTimeout); len(pids) > 0 {
			t.Errorf("clickhouse %v of %s outlived tally all by %s; killed", pids, s.dataDir, allOrphanTimeout)
		}
		p.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("tally all (pid %d) output:\n%s", cmd.Process.Pid, p.stderr.String())
		}
	})
	return p
}

func (p *allProc) ingestURL() string { return "http://127.0.0.1:" + strconv.Itoa(p.setup.ingest) }
func (p *allProc) queryURL() string  { return "http://127.0.0.1:" + strconv.Itoa(p.setup.query) }

// exited reports whether the process has exited.
func (p *allProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitReady waits until ingest, query and aggregator all answer /readyz
// with 200.
func (p *allProc) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(allReadyTimeout)
	for _, port := range []int{p.setup.ingest, p.setup.query, p.setup.aggregator} {
		url := "http://127.0.0.1:" + strconv.Itoa(port) + "/readyz"
		for {
			if p.exited() {
				p.t.Fatalf("tally all exited before it was ready: %v", p.err)
			}
			resp, err := p.client.Get(url)
			var body []byte
			if err == nil {
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				p.t.Fatalf("%s not ready after %s: %v %s", url, allReadyTimeout, err, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// stop sends sig and expects an exit with status 0.
func (p *allProc) stop(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	p.waitExit(allStopTimeout)
	if p.err != nil {
		p.t.Fatalf("tally all exited on %v with %v, want status 0", sig, p.err)
	}
	// A clean stop waits for ClickHouse to exit: nothing is left, not
	// even a server still shutting down.
	if pids := clickhouseOf(p.t, p.setup.dataDir); len(pids) > 0 {
		p.t.Fatalf("clickhouse %v still running after tally all exited on %v", pids, sig)
	}
}

func (p *allProc) waitExit(timeout time.Duration) {
	p.t.Helper()
	select {
	case <-p.done:
		p.client.CloseIdleConnections()
	case <-time.After(timeout):
		p.t.Fatalf("tally all still running %s after it was told to stop", timeout)
	}
}

func (p *allProc) do(method, url, key string, body []byte) (int, []byte) {
	p.t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (p *allProc) createMeter(definition string) {
	p.t.Helper()
	if code, body := p.do("POST", p.queryURL()+"/api/v1/meters", p.setup.devKey, []byte(definition)); code != http.StatusCreated {
		p.t.Fatalf("create meter: %d %s", code, body)
	}
}

// postEvents posts events first .. first+n-1, each with value 0.1, spread
// over customers (and so over partitions), and expects all accepted.
func (p *allProc) postEvents(first, n int) {
	p.t.Helper()
	events := make([]map[string]any, n)
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for i := range events {
		id := first + i
		events[i] = map[string]any{
			"id": fmt.Sprintf("evt-%05d", id), "type": "api.call", "customer_id": fmt.Sprintf("customer-%d", id%7),
			"time": at.Add(time.Duration(id) * time.Second).Format(time.RFC3339), "properties": map[string]any{"value": 0.1},
		}
	}
	body, err := json.Marshal(events)
	if err != nil {
		p.t.Fatal(err)
	}
	code, resp := p.do("POST", p.ingestURL()+"/api/v1/events", p.setup.devKey, body)
	if code != http.StatusAccepted || !strings.Contains(string(resp), fmt.Sprintf(`"accepted":%d,"rejected":[]`, n)) {
		p.t.Fatalf("post events %d..%d: %d %s", first, first+n-1, code, resp)
	}
}

// usage returns the meter's total over 2026 as a decimal string ("0" when
// it has no rows yet).
func (p *allProc) usage(meter string) string {
	p.t.Helper()
	q := url.Values{"from": {"2026-01-01T00:00:00Z"}, "to": {"2027-01-01T00:00:00Z"}}
	code, body := p.do("GET", p.queryURL()+"/api/v1/meters/"+meter+"/query?"+q.Encode(), p.setup.devKey, nil)
	if code != http.StatusOK {
		p.t.Fatalf("query %s: %d %s", meter, code, body)
	}
	var resp struct {
		Data []struct {
			Value json.Number `json:"value"`
		} `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&resp); err != nil {
		p.t.Fatalf("query %s: %v in %s", meter, err, body)
	}
	total := decimal.Zero
	for _, row := range resp.Data {
		v, err := decimal.NewFromString(row.Value.String())
		if err != nil {
			p.t.Fatalf("query %s: value %q: %v", meter, row.Value, err)
		}
		total = total.Add(v)
	}
	return total.String()
}

// waitUsage polls until the meter's usage is want. Usage only grows
// towards want; above it, an event was counted twice and the test fails
// at once.
func (p *allProc) waitUsage(meter, want string) {
	p.t.Helper()
	wantDec := decimal.RequireFromString(want)
	deadline := time.Now().Add(allUsageTimeout)
	for {
		got := p.usage(meter)
		gotDec := decimal.RequireFromString(got)
		switch {
		case gotDec.Equal(wantDec):
			return
		case gotDec.GreaterThan(wantDec):
			p.t.Fatalf("usage of %s = %s, above %s: events counted more than once", meter, got, want)
		case time.Now().After(deadline):
			p.t.Fatalf("usage of %s = %s after %s, want %s", meter, got, allUsageTimeout, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// metric returns the sum of the aggregator's series of a metric, and the
// series themselves.
func (p *allProc) metric(name string) (float64, []string) {
	p.t.Helper()
	code, body := p.do("GET", "http://127.0.0.1:"+strconv.Itoa(p.setup.aggregator)+"/metrics", "", nil)
	if code != http.StatusOK {
		p.t.Fatalf("aggregator metrics: %d %s", code, body)
	}
	var total float64
	var series []string
	for _, line := range strings.Split(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		fields := strings.Fields(rest)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			p.t.Fatalf("metric line %q: %v", line, err)
		}
		total += v
		series = append(series, strings.TrimSpace(rest))
	}
	return total, series
}

// waitMetric polls the aggregator's metric until ok holds for its sum.
func (p *allProc) waitMetric(name string, ok func(float64) bool) {
	p.t.Helper()
	deadline := time.Now().Add(allUsageTimeout)
	for {
		v, series := p.metric(name)
		if ok(v) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("aggregator metric %s = %v after %s", name, series, allUsageTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clickhousePID returns the pid in the ClickHouse status file, after
// checking that the process scan sees that server (so that a scan finding
// nothing later means something).
func (p *allProc) clickhousePID() int {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join(p.setup.dataDir, "clickhouse", "data", "status"))
	if err != nil {
		p.t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(first, "PID:")))
	if err != nil {
		p.t.Fatalf("clickhouse status file: %q", b)
	}
	pids := clickhouseOf(p.t, p.setup.dataDir)
	if len(pids) != 1 || pids[0] != pid {
		p.t.Fatalf("clickhouse processes of %s: %v, want the status file's pid %d", p.setup.dataDir, pids, pid)
	}
	return pid
}

// clickhouseOf lists the live ClickHouse servers whose command line names
// a file under dataDir. Zombies have an empty command line and do not
// count: they hold no files or locks.
func clickhouseOf(t *testing.T, dataDir string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue // gone meanwhile, or a zombie
		}
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if strings.Contains(filepath.Base(argv[0]), "clickhouse") && strings.Contains(string(b), dataDir+string(filepath.Separator)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitNoClickHouse waits for every ClickHouse server of dataDir to exit.
func waitNoClickHouse(t *testing.T, dataDir string, timeout time.Duration) {
	t.Helper()
	if pids := clickhouseLeft(t, dataDir, timeout); len(pids) > 0 {
		t.Fatalf("clickhouse %v of %s still running %s after tally all died; killed", pids, dataDir, timeout)
	}
}

// clickhouseLeft waits up to timeout for the ClickHouse servers of dataDir
// to exit, and SIGKILLs and returns those that did not, so that no test
// leaves a server running.
func clickhouseLeft(t *testing.T, dataDir string, timeout time.Duration) []int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pids := clickhouseOf(t, dataDir)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			return pids
		}
		time.Sleep(50 * time.Millisecond)
	}
}

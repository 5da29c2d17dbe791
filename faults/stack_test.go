package faults

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tally-oss/tally/internal/chserver"
)

// org is one organization of the stack and its API key.
type org struct{ id, key string }

// orgs: two, so every comparison also checks that neither sees the other's
// events (the load sends the same event ids to both).
var orgs = []org{
	{"org-a", "fault-suite-key-org-a-0123456789"},
	{"org-b", "fault-suite-key-org-b-0123456789"},
}

const (
	eventType   = "fault.call"
	readyTimout = 90 * time.Second
	database    = "tally"
)

// meterDefs are the meters of both organizations: SUM with a filter,
// COUNT, MAX and UNIQUE_COUNT, all grouped by model.
var meterDefs = []meterDef{
	{"f_tokens", "SUM", `{"key": "f_tokens", "event_type": "fault.call", "aggregation": "SUM", "value_property": "$.tokens", "group_by": {"model": "$.model"}, "filter": {"status": {"eq": "ok"}}}`},
	{"f_calls", "COUNT", `{"key": "f_calls", "event_type": "fault.call", "aggregation": "COUNT", "group_by": {"model": "$.model"}}`},
	{"f_latency", "MAX", `{"key": "f_latency", "event_type": "fault.call", "aggregation": "MAX", "value_property": "$.latency_ms", "group_by": {"model": "$.model"}}`},
	{"f_sessions", "UNIQUE_COUNT", `{"key": "f_sessions", "event_type": "fault.call", "aggregation": "UNIQUE_COUNT", "value_property": "$.session", "group_by": {"model": "$.model"}}`},
}

type meterDef struct{ key, agg, json string }

// stackOptions vary the stack per fault.
type stackOptions struct {
	aggregators    int
	ingestArgs     []string
	aggregatorArgs []string
}

// stack is one private Tally: kfake in this process, ClickHouse and the
// tally components as child processes.
type stack struct {
	t   *testing.T
	dir string

	kafkaPort  int
	kafkaDir   string
	kafkaAddrs []string // every broker of a multi-broker cluster; empty: the one on kafkaPort
	clusterMu  sync.Mutex
	cluster    *kfake.Cluster

	chDir            string
	chTCP, chHTTP    int
	chMu             sync.Mutex
	ch               *chserver.Server
	chCluster        *chserver.Cluster // the cluster test's servers; nil: ch
	ingest, query    *proc             // the first of ingests and queries
	ingests, queries []*proc
	ingestNext       atomic.Uint64 // round robin of requests over ingests
	aggregators      []*proc
	aggregatorArgs   []string
	aggregatorCH     func(i int) []string // ClickHouse flags of the i-th aggregator started
	client           *http.Client
	aggregatorsAdded int
}

func newStack(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir()) // chserver compares resolved paths
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{
		t: t, dir: dir,
		// Ports are picked at the first start and kept for restarts.
		kafkaDir: filepath.Join(dir, "kafka"), chDir: filepath.Join(dir, "clickhouse"),
		client: newClient(),
	}
	began := time.Now()
	s.startBroker()
	t.Cleanup(func() { s.withCluster(func(c *kfake.Cluster) { c.Close() }) })
	s.startClickHouse()
	t.Cleanup(func() {
		s.chMu.Lock()
		defer s.chMu.Unlock()
		if s.ch != nil {
			_ = s.ch.Stop()
		}
	})

	s.runTally("migrate", "-clickhouse.addr="+s.chAddr(), "-clickhouse.database="+database)
	s.startTally(opts, tallyOptions{
		kafkaArgs: []string{"-kafka.brokers=" + s.brokerAddr(), "-kafka.partitions=6"},
		clickhouseArgs: func(int) []string {
			return []string{"-clickhouse.addr=" + s.chAddr(), "-clickhouse.database=" + database}
		},
		ingests: 1, queries: 1,
	})
	t.Logf("stack ready in %s: kafka %s, clickhouse %s, ingest %s, query %s, %d aggregators",
		time.Since(began).Round(time.Millisecond), s.brokerAddr(), s.chAddr(), s.ingest.addr, s.query.addr, len(s.aggregators))
	return s
}

// tallyOptions are where the tally processes of a stack connect, and how
// many ingest and query processes it runs.
type tallyOptions struct {
	kafkaArgs []string
	// clickhouseArgs returns the ClickHouse flags of the i-th process of
	// its kind (a cluster spreads them over its servers).
	clickhouseArgs   func(i int) []string
	ingests, queries int
}

// startTally starts the ingest and query processes, creates the meters
// through the first query process and starts the aggregators, each ready
// before it returns.
func (s *stack) startTally(opts stackOptions, to tallyOptions) {
	t := s.t
	t.Helper()
	keys := make([]string, len(orgs))
	for i, o := range orgs {
		keys[i] = o.id + ":" + o.key
	}
	for i := range to.ingests {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		args := append([]string{"ingest", "-api-keys=" + strings.Join(keys, ","), "-ingest.listen-addr=" + addr}, to.kafkaArgs...)
		s.ingests = append(s.ingests, newProc(t, bin, numbered("ingest", i, to.ingests), addr, append(args, opts.ingestArgs...)...))
	}
	for i := range to.queries {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		args := append([]string{"query", "-api-keys=" + strings.Join(keys, ","), "-clickhouse.migrate=false", "-query.listen-addr=" + addr},
			to.clickhouseArgs(i)...)
		s.queries = append(s.queries, newProc(t, bin, numbered("query", i, to.queries), addr, args...))
	}
	s.ingest, s.query = s.ingests[0], s.queries[0]
	s.aggregatorArgs = append(append([]string{}, to.kafkaArgs...), []string{
		"-clickhouse.migrate=false",
		// Fast failure detection: a killed member's partitions move after
		// the session timeout (kfake's minimum is 6 s).
		"-aggregator.session-timeout=6s", "-aggregator.heartbeat-interval=1s",
		"-aggregator.rebalance-timeout=10s", "-aggregator.retry-max-interval=2s",
	}...)
	s.aggregatorArgs = append(s.aggregatorArgs, opts.aggregatorArgs...)
	s.aggregatorCH = to.clickhouseArgs
	t.Cleanup(func() {
		procs := append(append(append([]*proc{}, s.ingests...), s.queries...), s.aggregators...)
		for _, p := range procs {
			p.stop()
		}
		if t.Failed() || os.Getenv("TALLY_FAULTS_LOGS") != "" {
			for _, p := range procs {
				t.Logf("--- %s output (tail):\n%s", p.name, p.out.String())
			}
		}
		s.client.CloseIdleConnections()
	})
	// Ingest creates the topics, as in production.
	for _, p := range s.ingests {
		p.start()
		p.waitReady(readyTimout)
	}
	for _, p := range s.queries {
		p.start()
		p.waitReady(readyTimout)
	}
	for _, o := range orgs {
		for _, m := range meterDefs {
			code, body := s.do(http.MethodPost, "http://"+s.query.addr+"/api/v1/meters", o.key, []byte(m.json))
			if code != http.StatusCreated {
				t.Fatalf("create meter %s for %s: %d %s", m.key, o.id, code, body)
			}
		}
	}
	for range max(opts.aggregators, 1) {
		s.addAggregator()
	}
	for _, a := range s.aggregators {
		a.waitReady(readyTimout)
	}
}

// numbered names the i-th of n processes of a kind: "query", or "query-2"
// when there are several.
func numbered(kind string, i, n int) string {
	if n == 1 {
		return kind
	}
	return fmt.Sprintf("%s-%d", kind, i+1)
}

// addAggregator starts one more aggregator in the group (not waiting for
// readiness) and returns it.
func (s *stack) addAggregator() *proc {
	s.aggregatorsAdded++
	addr := "127.0.0.1:" + strconv.Itoa(freePort(s.t))
	args := append([]string{"aggregator", "-aggregator.listen-addr=" + addr}, s.aggregatorCH(s.aggregatorsAdded-1)...)
	p := newProc(s.t, bin, fmt.Sprintf("aggregator-%d", s.aggregatorsAdded), addr, append(args, s.aggregatorArgs...)...)
	s.aggregators = append(s.aggregators, p)
	p.start()
	return p
}

// runTally runs a tally command to completion.
func (s *stack) runTally(args ...string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("tally %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (s *stack) brokerAddr() string {
	if len(s.kafkaAddrs) > 0 {
		return strings.Join(s.kafkaAddrs, ",")
	}
	return "127.0.0.1:" + strconv.Itoa(s.kafkaPort)
}
func (s *stack) chAddr() string { return "127.0.0.1:" + strconv.Itoa(s.chTCP) }

func (s *stack) startBroker() {
	s.t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(s.kafkaPort), kfake.DataDir(s.kafkaDir))
	if err != nil {
		s.t.Fatalf("start kfake on port %d: %v", s.kafkaPort, err)
	}
	s.clusterMu.Lock()
	s.cluster = c
	s.clusterMu.Unlock()
	if s.kafkaPort == 0 {
		_, port, _ := net.SplitHostPort(c.ListenAddrs()[0])
		s.kafkaPort, _ = strconv.Atoi(port)
	}
}

// withCluster runs f on the current broker, if one runs.
func (s *stack) withCluster(f func(*kfake.Cluster)) {
	s.clusterMu.Lock()
	defer s.clusterMu.Unlock()
	if s.cluster != nil {
		f(s.cluster)
	}
}

// restartBroker closes the broker (which flushes its state to the data
// dir) and starts a new one on the same dir and port.
func (s *stack) restartBroker(down time.Duration) {
	s.t.Helper()
	s.stopBroker()
	time.Sleep(down)
	s.startBroker()
}

// stopBroker closes the broker, which flushes its state to the data dir.
func (s *stack) stopBroker() {
	s.clusterMu.Lock()
	defer s.clusterMu.Unlock()
	s.cluster.Close()
	s.cluster = nil
}

func (s *stack) startClickHouse() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := chserver.Start(ctx, chserver.Options{
		Dir: s.chDir, TCPPort: s.chTCP, HTTPPort: s.chHTTP,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		s.t.Fatalf("start clickhouse: %v", err)
	}
	s.chMu.Lock()
	s.ch = srv
	s.chMu.Unlock()
	if s.chTCP == 0 {
		_, tcp, _ := net.SplitHostPort(srv.Addr())
		_, http, _ := net.SplitHostPort(srv.HTTPAddr())
		s.chTCP, _ = strconv.Atoi(tcp)
		s.chHTTP, _ = strconv.Atoi(http)
	}
}

// stopClickHouse stops the server with SIGTERM; startClickHouse starts it
// again on the same directory and ports.
func (s *stack) stopClickHouse() {
	s.t.Helper()
	s.chMu.Lock()
	defer s.chMu.Unlock()
	if err := s.ch.Stop(); err != nil {
		s.t.Logf("stop clickhouse: %v", err)
	}
	s.ch = nil
}

// killClickHouse ends the server with SIGKILL: no flush, no clean
// shutdown. Its pid is in the status file the server keeps in its data
// directory.
func (s *stack) killClickHouse() {
	s.t.Helper()
	s.chMu.Lock()
	defer s.chMu.Unlock()
	b, err := os.ReadFile(filepath.Join(s.chDir, "data", "status"))
	if err != nil {
		s.t.Fatalf("clickhouse status file: %v", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(first, "PID:")))
	if err != nil {
		s.t.Fatalf("no pid in clickhouse status file: %q", first)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		s.t.Fatalf("kill clickhouse pid %d: %v", pid, err)
	}
	_ = s.ch.Wait()
	s.ch = nil
}

// conn opens a ClickHouse connection to the stack's database.
func (s *stack) conn() driver.Conn {
	s.t.Helper()
	addrs := []string{s.chAddr()}
	if s.chCluster != nil {
		addrs = s.chCluster.Addrs()
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: addrs, Protocol: clickhouse.Native,
		Auth:        clickhouse.Auth{Database: database, Username: "default"},
		DialTimeout: 5 * time.Second, ReadTimeout: time.Minute,
	})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// do sends one API request with key.
func (s *stack) do(method, url, key string, body []byte) (int, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func newClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
}

// ingestURL is the events endpoint of the next ingest process.
func (s *stack) ingestURL() string {
	n := s.ingestNext.Add(1)
	return "http://" + s.ingests[int(n%uint64(len(s.ingests)))].addr + "/api/v1/events"
}

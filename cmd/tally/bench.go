package main

// tally bench: the performance benchmark of issue 7 (`make bench`). It
// starts what it needs itself and measures, in one run:
//
//   - ingest at each request shape (connections x events per request)
//     against an in-process kfake broker and a `tally ingest` child
//     process, each next to its limit: kafka-go producing the same encoded
//     records (RequireAll, lz4, the writer settings ingest defaults to)
//     into the same broker, measured just before it;
//   - end to end: `tally all` (its embedded broker and a private
//     ClickHouse) under a paced load, the freshness of usage (last
//     acknowledgement of a one-second slice of the load -> that slice's
//     usage exact in a query) and whether every total is exact.
//
// It prints a table and, as its last line, one JSON object with every
// figure, its limit, the ratio to the limit and the target.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tally-oss/tally/ingest"
	"github.com/tally-oss/tally/schemas"
)

const (
	benchOrg = "bench"
	benchKey = "bench-key-0123456789-0123456789"
)

type benchShape struct {
	Conns, Batch int
	Format       string // json or ndjson
	Gzip         bool
}

func (s benchShape) String() string {
	n := fmt.Sprintf("%dx%d", s.Conns, s.Batch)
	if s.Format == "ndjson" {
		n += " ndjson"
	}
	if s.Gzip {
		n += "+gzip"
	}
	return n
}

type benchConfig struct {
	Duration    time.Duration
	Shapes      string
	GzipShape   string
	E2E         bool
	E2ERate     float64
	E2EDuration time.Duration
	E2EShape    string
	Partitions  int
}

func (c *benchConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Duration, "bench.duration", 10*time.Second, "how long each ingest shape and each limit runs")
	fs.StringVar(&c.Shapes, "bench.shapes", "1x1,8x10,8x100,16x500,8x1000", "request shapes (connections x events per request, JSON array), comma-separated")
	fs.StringVar(&c.GzipShape, "bench.gzip-shape", "8x1000", "shape also sent as gzip NDJSON (empty: none)")
	fs.BoolVar(&c.E2E, "bench.e2e", true, "measure end to end (tally all, embedded broker and ClickHouse) with freshness")
	fs.Float64Var(&c.E2ERate, "bench.e2e-rate", 20000, "events per second of the end-to-end load")
	fs.DurationVar(&c.E2EDuration, "bench.e2e-duration", 30*time.Second, "how long the end-to-end load runs")
	fs.StringVar(&c.E2EShape, "bench.e2e-shape", "8x100", "request shape of the end-to-end load")
	fs.IntVar(&c.Partitions, "bench.partitions", 6, "partitions of the event topic")
}

func parseShape(s string) (benchShape, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "x")
	c, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || c < 1 || n < 1 {
		return benchShape{}, fmt.Errorf("shape %q must be <connections>x<events per request>", s)
	}
	return benchShape{Conns: c, Batch: n, Format: "json"}, nil
}

func (c *benchConfig) shapes() ([]benchShape, error) {
	var out []benchShape
	for _, s := range strings.Split(c.Shapes, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		sh, err := parseShape(s)
		if err != nil {
			return nil, err
		}
		out = append(out, sh)
	}
	if c.GzipShape != "" {
		sh, err := parseShape(c.GzipShape)
		if err != nil {
			return nil, err
		}
		sh.Format, sh.Gzip = "ndjson", true
		out = append(out, sh)
	}
	return out, nil
}

func (c *benchConfig) Validate() error {
	var errs []error
	if _, err := c.shapes(); err != nil {
		errs = append(errs, err)
	}
	if c.E2E {
		if _, err := parseShape(c.E2EShape); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Duration <= 0 || c.E2EDuration <= 0 || c.E2ERate <= 0 || c.Partitions < 1 {
		errs = append(errs, errors.New("bench.duration, bench.e2e-duration, bench.e2e-rate and bench.partitions must be positive"))
	}
	return errors.Join(errs...)
}

// Targets of issue 7 (events/s; 0: none).
var benchTargets = map[string]float64{"1x1": 2000, "8x10": 50000, "8x1000": 300000}

// benchFigure is one measured line of the report.
type benchFigure struct {
	Name        string  `json:"name"`
	EventsPerS  float64 `json:"events_per_s"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	Limit       float64 `json:"limit_events_per_s,omitempty"`
	LimitP99ms  float64 `json:"limit_p99_ms,omitempty"`
	Ratio       float64 `json:"ratio_to_limit,omitempty"`
	Target      float64 `json:"target_events_per_s,omitempty"`
	TargetRatio float64 `json:"ratio_to_target,omitempty"`
	Events      int     `json:"events"`
	Failed      int     `json:"failed_requests"`
	// CPU of the ingest process (user + system) per accepted event.
	CPUus       float64 `json:"cpu_us_per_event"`
	CPUTargetUs float64 `json:"cpu_us_per_event_target,omitempty"`
}

type benchE2E struct {
	EventsPerS    float64 `json:"events_per_s"`
	OfferedPerS   float64 `json:"offered_events_per_s"`
	Events        int     `json:"events"`
	Slices        int     `json:"slices"`
	Exact         bool    `json:"exact"`
	FreshP50ms    float64 `json:"freshness_p50_ms"`
	FreshP99ms    float64 `json:"freshness_p99_ms"`
	FreshTargetMs float64 `json:"freshness_p99_target_ms"`
	TargetPerS    float64 `json:"target_events_per_s"`
	// Peak resident memory (VmHWM) of `tally all`, ClickHouse aside.
	PeakRSSMiB       float64 `json:"tally_all_peak_rss_mib"`
	PeakRSSTargetMiB float64 `json:"tally_all_peak_rss_target_mib"`
	Error            string  `json:"error,omitempty"`
}

type benchReport struct {
	Started  time.Time     `json:"started"`
	CPUs     int           `json:"cpus"`
	Go       string        `json:"go"`
	LoadAvg  [2]string     `json:"loadavg_before_after"` // 1-minute load average, a noise hint
	Noisy    bool          `json:"noisy"`                // a load average above the CPU count: other work shared the machine
	Duration string        `json:"shape_duration"`
	Ingest   []benchFigure `json:"ingest"`
	// Peak resident memory (VmHWM) of the ingest process over every shape.
	IngestPeakRSSMiB float64   `json:"ingest_peak_rss_mib"`
	E2E              *benchE2E `json:"end_to_end,omitempty"`
	Elapsed          string    `json:"elapsed"`
}

func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var common commonFlags
	var cfg benchConfig
	common.register(fs)
	cfg.RegisterFlags(fs)
	if err := parseFlags(fs, args, cfg.Validate); err != nil {
		return err
	}
	logger, err := common.logger()
	if err != nil {
		return err
	}
	rep, err := bench(ctx, cfg, os.Stdout, logger)
	if rep != nil {
		b, _ := json.Marshal(rep)
		fmt.Println(string(b))
	}
	return err
}

// bench runs every measurement and prints the table to w; the caller
// prints the JSON line.
func bench(ctx context.Context, cfg benchConfig, w io.Writer, logger *slog.Logger) (*benchReport, error) {
	began := time.Now()
	rep := &benchReport{Started: began.UTC(), CPUs: runtime.NumCPU(), Go: runtime.Version(), Duration: cfg.Duration.String()}
	rep.LoadAvg[0] = loadAvg()
	fmt.Fprintf(w, "tally bench: %d CPUs, %s, load average %s before\n", rep.CPUs, rep.Go, rep.LoadAvg[0])
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tally-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	if err := benchIngest(ctx, cfg, exe, dir, rep, w, logger); err != nil {
		return rep, err
	}
	if cfg.E2E {
		e, err := benchEndToEnd(ctx, cfg, exe, dir, w, logger)
		rep.E2E = e
		if err != nil {
			e.Error = err.Error()
			logger.Error("end to end", "err", err)
		}
	}
	rep.Elapsed = time.Since(began).Round(time.Millisecond).String()
	rep.LoadAvg[1] = loadAvg()
	fmt.Fprintf(w, "\nelapsed %s, load average %s after\n", rep.Elapsed, rep.LoadAvg[1])
	for _, l := range rep.LoadAvg {
		if v, err := strconv.ParseFloat(l, 64); err == nil && v > float64(rep.CPUs) {
			rep.Noisy = true
		}
	}
	if rep.Noisy {
		fmt.Fprintf(w, "WARNING: load average %s before, %s after, on %d CPUs: other work shared the machine; these figures are noise, rerun on a quiet machine\n",
			rep.LoadAvg[0], rep.LoadAvg[1], rep.CPUs)
	}
	return rep, nil
}

// benchIngest measures every shape against ingest and its limit.
func benchIngest(ctx context.Context, cfg benchConfig, exe, dir string, rep *benchReport, w io.Writer, logger *slog.Logger) error {
	shapes, _ := cfg.shapes()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(cfg.Partitions), "tally-bench-limit"))
	if err != nil {
		return fmt.Errorf("start kfake: %w", err)
	}
	defer cluster.Close()
	broker := cluster.ListenAddrs()[0]
	addr := "127.0.0.1:" + strconv.Itoa(benchFreePort())
	child, err := startChild(ctx, exe, filepath.Join(dir, "ingest.log"), addr, "ingest",
		"-api-keys="+benchOrg+":"+benchKey, "-kafka.brokers="+broker,
		"-kafka.partitions="+strconv.Itoa(cfg.Partitions), "-ingest.listen-addr="+addr, "-log.level=warn")
	if err != nil {
		return err
	}
	defer child.stop()

	fmt.Fprintf(w, "ingest (tally ingest -> in-process kfake, %d partitions, %s per shape; limit: kafka-go Writer, same records, RequireAll, lz4, 5 ms linger)\n", cfg.Partitions, cfg.Duration)
	fmt.Fprintf(w, "%-20s %10s %8s %8s %12s %8s %6s %8s %9s\n", "shape", "events/s", "p50 ms", "p99 ms", "limit ev/s", "lim p99", "ratio", "target", "cpu us/ev")
	for i, sh := range shapes {
		lim, limP99, err := benchLimit(ctx, broker, sh, cfg.Duration, i)
		if err != nil {
			return fmt.Errorf("limit %s: %w", sh, err)
		}
		lg := benchLoadgen("http://"+addr, "", sh, fmt.Sprintf("b%d-%s", i, randHex(4)), logger)
		cpu0 := procCPU(child.cmd.Process.Pid)
		res := lg.sendFor(ctx, cfg.Duration, nil)
		cpu := procCPU(child.cmd.Process.Pid) - cpu0
		f := benchFigure{Name: sh.String(), EventsPerS: round3(res.perSecond), P50ms: ms(res.p50), P99ms: ms(res.p99),
			Limit: round3(lim), LimitP99ms: ms(limP99), Events: res.accepted, Failed: res.failed}
		if res.accepted > 0 && cpu > 0 {
			f.CPUus = round3(float64(cpu) / float64(time.Microsecond) / float64(res.accepted))
		}
		if sh.Batch >= 500 {
			f.CPUTargetUs = 4
		}
		if lim > 0 {
			f.Ratio = round3(f.EventsPerS / lim)
		}
		if t := benchTargets[sh.String()]; t > 0 {
			f.Target, f.TargetRatio = t, round3(f.EventsPerS/t)
		}
		rep.Ingest = append(rep.Ingest, f)
		target := "-"
		if f.Target > 0 {
			target = strconv.FormatFloat(f.Target, 'f', 0, 64)
		}
		fmt.Fprintf(w, "%-20s %10.0f %8.1f %8.1f %12.0f %8.1f %6.2f %8s %9.1f\n", f.Name, f.EventsPerS, f.P50ms, f.P99ms, f.Limit, f.LimitP99ms, f.Ratio, target, f.CPUus)
		if res.failed > 0 {
			fmt.Fprintf(w, "  %d requests failed: %v\n", res.failed, res.failedWhy)
		}
	}
	rep.IngestPeakRSSMiB = procPeakRSSMiB(child.cmd.Process.Pid)
	fmt.Fprintf(w, "ingest peak RSS %.0f MiB; cpu us/ev is the ingest process's user+system CPU per accepted event (target < 4 us for large requests)\n", rep.IngestPeakRSSMiB)
	return nil
}

// procCPU is the user+system CPU time of process pid so far (Linux; 0
// elsewhere), in clock ticks of 10 ms.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:])) // from field 3 (state) on
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// procPeakRSSMiB is the peak resident set (VmHWM) of process pid, or 0.
func procPeakRSSMiB(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return round3(kb / 1024)
		}
	}
	return 0
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 3, 64), 64)
	return v
}

// benchRecords returns n records encoded as ingest encodes them, for the
// limit: same key, value, header and timestamp.
func benchRecords(sh benchShape, n int, runID string) ([]kafka.Message, error) {
	cfg := loadgenConfig{Format: "json", Customers: 1000, RunID: runID}
	raw := appendEvents(nil, &cfg, 0, n, time.Now())
	var events []schemas.Event
	if err := json.Unmarshal(raw, &events); err != nil {
		return nil, err
	}
	now := time.Now()
	msgs := make([]kafka.Message, len(events))
	for i, e := range events {
		k, v, err := schemas.EncodeRecord(schemas.Record{OrgID: benchOrg, Event: e, IngestedAt: now})
		if err != nil {
			return nil, err
		}
		msgs[i] = kafka.Message{Key: k, Value: v, Time: now,
			Headers: []kafka.Header{{Key: "content-type", Value: []byte(schemas.RecordContentType)}}}
	}
	return msgs, nil
}

// benchLimit produces the shape's records with kafka-go alone: sh.Conns
// goroutines, each writing sh.Batch records at a time and waiting for the
// acknowledgement, as ingest's requests do.
func benchLimit(ctx context.Context, broker string, sh benchShape, d time.Duration, i int) (float64, time.Duration, error) {
	msgs, err := benchRecords(sh, sh.Batch, "limit-"+strconv.Itoa(i))
	if err != nil {
		return 0, 0, err
	}
	wr := &kafka.Writer{
		Addr: kafka.TCP(broker), Topic: "tally-bench-limit", Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, Compression: kafka.Lz4,
		BatchTimeout: ingest.DefaultKafkaBatchTimeout, BatchSize: ingest.DefaultKafkaBatchSize, BatchBytes: ingest.DefaultKafkaBatchBytes,
	}
	defer wr.Close()
	// A first write outside the timing: metadata and connections.
	if err := wr.WriteMessages(ctx, slices.Clone(msgs[:1])...); err != nil {
		return 0, 0, err
	}
	var (
		written atomic.Int64
		mu      sync.Mutex
		lat     []time.Duration
		first   error
		wg      sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for range sh.Conns {
		wg.Go(func() {
			var mine []time.Duration
			batch := make([]kafka.Message, len(msgs))
			for time.Now().Before(deadline) && ctx.Err() == nil {
				copy(batch, msgs)
				t := time.Now()
				if err := wr.WriteMessages(ctx, batch...); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t))
				written.Add(int64(len(batch)))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	return float64(written.Load()) / elapsed.Seconds(), percentile(lat, 0.99), first
}

// child is a tally process the benchmark started.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// startChild starts exe with args, its output in logPath, and waits until
// readyAddr answers /readyz with 200.
func startChild(ctx context.Context, exe, logPath, readyAddr string, args ...string) (*child, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); out.Close(); close(c.done) }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + readyAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		select {
		case <-c.done:
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("tally %s exited before it was ready:\n%s", args[0], tail(b))
		case <-ctx.Done():
			c.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop()
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("tally %s not ready after 90s:\n%s", args[0], tail(b))
		}
	}
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// stop ends the child with SIGTERM, then SIGKILL after 30 s.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func benchFreePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

package main

// tally bench: the performance benchmark of issue 7 (`make bench`). It
// starts what it needs itself and measures, in one run:
//
//   - ingest at each request shape (connections x events per request)
//     against an in-process kfake broker and a `tally ingest` child
//     process, each next to its limits: kafka-go producing the same encoded
//     records into the same broker, measured just before it, with ingest's
//     writer settings (5 ms linger) and, for small shapes, without linger
//     (the ceiling of group commit) (bench_ingest.go);
//   - the limit of the aggregator: clickhouse-go inserting the rows the
//     aggregator writes for the same events (events, hence event_identities,
//     and readings) into the ClickHouse of `tally all` (bench_clickhouse.go);
//   - end to end: `tally all` (its embedded broker and a private
//     ClickHouse) under a paced load, the rate accepted and queryable per
//     10 s window, the freshness of usage (last acknowledgement of a
//     one-second slice of the load -> that slice's usage exact in a query),
//     whether every total is exact, the backlog and the peak memory of
//     `tally all` and of its ClickHouse (bench_e2e.go);
//   - query latency over a store of 10 million events next to the bare SQL
//     (benchQuery, set by bench_query.go);
//   - on request (make bench-memory): `tally all` under a steady load for
//     10 minutes, and under more load than the aggregator takes
//     (bench_memory.go).
//
// It prints a table and, as its last line, one JSON object with every
// figure, its limit, the ratio to the limit and the target.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
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
	Ingest           bool
	Duration         time.Duration
	Shapes           string
	GzipShape        string
	NoLingerMaxBatch int
	Partitions       int

	ClickHouse      bool
	ClickHouseBatch int

	E2E         bool
	E2ERate     float64
	E2EDuration time.Duration
	E2EShape    string
	E2EDrain    time.Duration

	Query       bool
	QueryEvents int

	MemoryDuration time.Duration
	MemoryRate     float64
	LagDuration    time.Duration
	LagRate        float64
	LagShape       string
}

func (c *benchConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Ingest, "bench.ingest", true, "measure ingest at every request shape next to kafka-go")
	fs.DurationVar(&c.Duration, "bench.duration", 5*time.Second, "how long each ingest shape and each limit runs")
	fs.StringVar(&c.Shapes, "bench.shapes", "1x1,8x10,8x100,16x500,8x1000", "request shapes (connections x events per request, JSON array), comma-separated")
	fs.StringVar(&c.GzipShape, "bench.gzip-shape", "8x1000", "shape also sent as gzip NDJSON (empty: none)")
	fs.IntVar(&c.NoLingerMaxBatch, "bench.nolinger-max-batch", 100, "shapes of at most this many events per request also get a limit without linger (kafka-go, 1 us batch timeout); 0: none")
	fs.IntVar(&c.Partitions, "bench.partitions", 6, "partitions of the event topic")
	fs.BoolVar(&c.ClickHouse, "bench.clickhouse", true, "measure the aggregator's limit: clickhouse-go inserting the same rows")
	fs.IntVar(&c.ClickHouseBatch, "bench.clickhouse-batch", 10_000, "rows of one insert in the ClickHouse limit (the aggregator's batch size)")
	fs.BoolVar(&c.E2E, "bench.e2e", true, "measure end to end (tally all, embedded broker and ClickHouse) with freshness")
	fs.Float64Var(&c.E2ERate, "bench.e2e-rate", 80000, "events per second offered by the end-to-end load")
	fs.DurationVar(&c.E2EDuration, "bench.e2e-duration", 60*time.Second, "how long the end-to-end load runs")
	fs.StringVar(&c.E2EShape, "bench.e2e-shape", "8x1000", "request shape of the end-to-end, memory and lag loads")
	fs.DurationVar(&c.E2EDrain, "bench.e2e-drain", 3*time.Minute, "how long after the last acknowledgement every usage total may take to become exact")
	fs.BoolVar(&c.Query, "bench.query", true, "measure query latency over a store of -bench.query-events events next to the bare SQL (when built with bench_query.go)")
	fs.IntVar(&c.QueryEvents, "bench.query-events", 10_000_000, "events in the store the query phase measures")
	fs.DurationVar(&c.MemoryDuration, "bench.memory-duration", 0, "run tally all under a steady load this long, sampling its RSS every 10 s (make bench-memory: 10m); 0: skip")
	fs.Float64Var(&c.MemoryRate, "bench.memory-rate", 10000, "events per second of the memory run's steady load")
	fs.DurationVar(&c.LagDuration, "bench.lag-duration", 0, "offer more than the aggregator takes (-bench.lag-rate) this long and report the backlog and tally all's peak RSS; 0: skip")
	fs.Float64Var(&c.LagRate, "bench.lag-rate", 100000, "events per second offered by the lag run")
	fs.StringVar(&c.LagShape, "bench.lag-shape", "8x1000", "request shape of the lag run")
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
	for _, s := range []string{c.E2EShape, c.LagShape} {
		if _, err := parseShape(s); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Duration <= 0 || c.E2EDuration <= 0 || c.E2ERate <= 0 || c.E2EDrain <= 0 || c.Partitions < 1 ||
		c.ClickHouseBatch < 1 || c.QueryEvents < 1 || c.MemoryRate <= 0 || c.LagRate <= 0 {
		errs = append(errs, errors.New("bench.duration, bench.e2e-duration, bench.e2e-rate, bench.e2e-drain, bench.partitions, "+
			"bench.clickhouse-batch, bench.query-events, bench.memory-rate and bench.lag-rate must be positive"))
	}
	if c.MemoryDuration < 0 || c.LagDuration < 0 || c.NoLingerMaxBatch < 0 {
		errs = append(errs, errors.New("bench.memory-duration, bench.lag-duration and bench.nolinger-max-batch must not be negative"))
	}
	return errors.Join(errs...)
}

// benchQueryEnv is what the query phase gets from the harness.
type benchQueryEnv struct {
	Exe    string       // the tally binary, to start `tally query` or `tally all`
	Dir    string       // a scratch directory, removed after the run
	Events int          // events in the store to measure (-bench.query-events)
	Out    io.Writer    // the table: print the phase's lines here
	Logger *slog.Logger // warnings and errors
}

// benchQuery measures query latency over a store of env.Events events,
// each query next to the same SQL run directly on ClickHouse (its limit).
// bench_query.go sets it (func init() { benchQuery = ... }); while it is
// nil, the query phase is reported as not measured. Its result, any
// JSON-encodable value holding every figure with its limit, ratio and
// target, goes in the JSON line under "query"; an error is reported there
// too and fails the run, after the other phases.
var benchQuery func(ctx context.Context, env benchQueryEnv) (any, error)

// Targets of issue 7 (events/s; 0: none).
var benchTargets = map[string]float64{"1x1": 2000, "8x10": 50000, "8x1000": 300000}

type benchReport struct {
	Started  time.Time     `json:"started"`
	CPUs     int           `json:"cpus"`
	Go       string        `json:"go"`
	LoadAvg  [2]string     `json:"loadavg_before_after"` // 1-minute load average, a noise hint
	Noisy    bool          `json:"noisy"`                // a load average above the CPU count: other work shared the machine
	Duration string        `json:"shape_duration"`
	Ingest   []benchFigure `json:"ingest,omitempty"`
	// Peak resident memory (VmHWM) of the ingest process over every shape.
	IngestPeakRSSMiB float64       `json:"ingest_peak_rss_mib,omitempty"`
	ClickHouse       *benchCHLimit `json:"clickhouse_limit,omitempty"`
	E2E              *benchE2E     `json:"end_to_end,omitempty"`
	Query            any           `json:"query,omitempty"`
	QueryError       string        `json:"query_error,omitempty"`
	Memory           *benchMemory  `json:"memory,omitempty"`
	Lag              *benchLag     `json:"lag,omitempty"`
	Errors           []string      `json:"errors,omitempty"`
	Elapsed          string        `json:"elapsed"`
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
// prints the JSON line. A phase that fails is recorded and the next one
// still runs; the error returned joins them.
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
	var errs []error
	fail := func(phase string, err error) {
		if err != nil {
			err = fmt.Errorf("%s: %w", phase, err)
			errs = append(errs, err)
			rep.Errors = append(rep.Errors, err.Error())
			logger.Error("bench phase failed", "phase", phase, "err", err)
		}
	}

	if cfg.Ingest {
		fail("ingest", benchIngest(ctx, cfg, exe, dir, rep, w, logger))
	}
	if cfg.ClickHouse || cfg.E2E {
		fail("end to end", benchEndToEnd(ctx, cfg, exe, dir, rep, w, logger))
	}
	if cfg.Query {
		fail("query", benchQueryPhase(ctx, cfg, exe, dir, rep, w, logger))
	}
	if cfg.MemoryDuration > 0 {
		fail("memory", benchMemoryRun(ctx, cfg, exe, dir, rep, w, logger))
	}
	if cfg.LagDuration > 0 {
		fail("lag", benchLagRun(ctx, cfg, exe, dir, rep, w, logger))
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
	return rep, errors.Join(errs...)
}

// benchQueryPhase runs benchQuery if this build has it.
func benchQueryPhase(ctx context.Context, cfg benchConfig, exe, dir string, rep *benchReport, w io.Writer, logger *slog.Logger) error {
	fmt.Fprintf(w, "\nquery over a store of %d events\n", cfg.QueryEvents)
	if benchQuery == nil {
		fmt.Fprintln(w, "not measured: this build has no query phase (bench_query.go)")
		return nil
	}
	qdir := dir + "/query"
	if err := os.MkdirAll(qdir, 0o755); err != nil {
		return err
	}
	res, err := benchQuery(ctx, benchQueryEnv{Exe: exe, Dir: qdir, Events: cfg.QueryEvents, Out: w, Logger: logger})
	rep.Query = res
	if err != nil {
		rep.QueryError = err.Error()
	}
	return err
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 3, 64), 64)
	return v
}

// ratio is a/b rounded, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round3(a / b)
}

package main

// tally loadgen: a load generator for a running Tally. It posts synthetic
// events to ingest, reports throughput and request latency, and then checks
// through the query API that usage of exactly this run became billable and
// exact (every event of 0.1 counted once), and how long that took after the
// last acknowledged request.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/schemas"
)

// The meter the load generator creates (unless it exists) and verifies: a
// SUM of 0.1 per event grouped by run, so a query filtered to one run sees
// exactly events/10 whatever earlier runs left behind.
const (
	loadgenEventType = "loadgen.call"
	loadgenValuePath = "$.tokens"
	loadgenGroupKey  = "run"
	loadgenGroupPath = "$.run_id"
)

var (
	loadgenModels   = []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet", "llama-3-70b"}
	loadgenRunIDPat = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

const (
	// loadgenMaxAttempts bounds the tries of one request answered 503
	// (Kafka did not acknowledge): about 30 s of backoff in all.
	loadgenMaxAttempts = 8
	// loadgenMaxConsecutiveFailures stops a run against a target that is
	// evidently down instead of failing every remaining request.
	loadgenMaxConsecutiveFailures = 20
	loadgenPollInterval           = 100 * time.Millisecond
)

// errUnauthorized stops a run: no later request would be accepted either.
var errUnauthorized = errors.New("ingest answered 401: the API key is not valid; set -loadgen.api-key or TALLY_LOADGEN_API_KEY")

type loadgenConfig struct {
	IngestURL     string
	QueryURL      string
	APIKey        string
	Events        int
	Batch         int
	Concurrency   int
	Customers     int
	Rate          float64 // events per second; 0: unlimited
	Format        string  // json or ndjson
	Gzip          bool
	Meter         string
	Verify        bool
	VerifyTimeout time.Duration
	RunID         string
}

func (c *loadgenConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.IngestURL, "loadgen.ingest-url", "http://127.0.0.1:8080", "base URL of the ingest API")
	fs.StringVar(&c.QueryURL, "loadgen.query-url", "http://127.0.0.1:8081", "base URL of the query API (meter creation and verification)")
	fs.StringVar(&c.APIKey, "loadgen.api-key", "", "API key (default, for URLs on this machine only: the dev key kept in $TALLY_DATA_DIR/dev-api-key, else ./data/dev-api-key)")
	fs.IntVar(&c.Events, "loadgen.events", 1_000_000, "events to send in all")
	fs.IntVar(&c.Batch, "loadgen.batch", 1000, "events per request")
	fs.IntVar(&c.Concurrency, "loadgen.concurrency", 8, "requests in flight at once")
	fs.IntVar(&c.Customers, "loadgen.customers", 1000, "distinct customer ids the events are spread over")
	fs.Float64Var(&c.Rate, "loadgen.rate", 0, "events per second at most (0: unlimited)")
	fs.StringVar(&c.Format, "loadgen.format", "json", "request body: json (an array) or ndjson")
	fs.BoolVar(&c.Gzip, "loadgen.gzip", false, "gzip request bodies")
	fs.StringVar(&c.Meter, "loadgen.meter", "loadgen_tokens", "meter to create if missing and to verify: SUM of $.tokens over type loadgen.call, grouped by run")
	fs.BoolVar(&c.Verify, "loadgen.verify", true, "after sending, poll the query API until this run's usage is exactly events/10")
	fs.DurationVar(&c.VerifyTimeout, "loadgen.verify-timeout", 2*time.Minute, "how long after the last acknowledged request usage may take to become exact")
	fs.StringVar(&c.RunID, "loadgen.run-id", "", "prefix of event ids and value of the run group (default: random, so a rerun sends new events)")
}

func (c *loadgenConfig) Validate() error {
	var errs []error
	for name, u := range map[string]string{"loadgen.ingest-url": c.IngestURL, "loadgen.query-url": c.QueryURL} {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("%s %q must be an http(s) URL", name, u))
		}
	}
	if c.Events < 1 || c.Batch < 1 || c.Concurrency < 1 || c.Customers < 1 {
		errs = append(errs, errors.New("loadgen.events, loadgen.batch, loadgen.concurrency and loadgen.customers must be at least 1"))
	}
	if c.Rate < 0 || math.IsInf(c.Rate, 0) || math.IsNaN(c.Rate) {
		errs = append(errs, fmt.Errorf("loadgen.rate %v must be 0 (unlimited) or a positive number of events per second", c.Rate))
	}
	if c.Format != "json" && c.Format != "ndjson" {
		errs = append(errs, fmt.Errorf("loadgen.format %q must be json or ndjson", c.Format))
	}
	if !schemas.MeterKeyPattern.MatchString(c.Meter) {
		errs = append(errs, fmt.Errorf("loadgen.meter %q must match %s", c.Meter, schemas.MeterKeyPattern))
	}
	if c.VerifyTimeout <= 0 {
		errs = append(errs, errors.New("loadgen.verify-timeout must be positive"))
	}
	if c.RunID != "" && !loadgenRunIDPat.MatchString(c.RunID) {
		errs = append(errs, fmt.Errorf("loadgen.run-id %q must match %s", c.RunID, loadgenRunIDPat))
	}
	return errors.Join(errs...)
}

// loadgenReport is what one run measured.
type loadgenReport struct {
	RunID      string
	Requests   int // answered 202
	Accepted   int // events acknowledged
	Rejected   int // events a 202 named as rejected
	Retries    int // 503 answers retried
	Failed     int // requests that finally failed
	FailedWhy  map[string]int
	Ambiguous  bool // a failed request may still have been written
	Elapsed    time.Duration
	PerSecond  float64
	LatencyP50 time.Duration // of every HTTP exchange that got an answer
	LatencyP90 time.Duration
	LatencyP99 time.Duration
	LatencyMax time.Duration

	Verified        bool // verification ran
	Exact           bool
	Expected        decimal.Decimal
	Got             decimal.Decimal
	BillableLatency time.Duration // last acknowledgement -> usage exact
	VerifyError     string        // last query error, if any
}

// runLoadgen is `tally loadgen`.
func runLoadgen(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var common commonFlags
	var cfg loadgenConfig
	common.register(fs)
	cfg.RegisterFlags(fs)
	if err := parseFlags(fs, args, cfg.Validate); err != nil {
		return err
	}
	logger, err := common.logger()
	if err != nil {
		return err
	}
	// The dev key is a credential of this machine's tally all: it is never
	// sent to another host.
	if cfg.APIKey == "" && loopbackURL(cfg.IngestURL) && loopbackURL(cfg.QueryURL) {
		cfg.APIKey = devKeyFromDataDir()
	}
	if cfg.APIKey == "" {
		return errors.New("no API key: set -loadgen.api-key or TALLY_LOADGEN_API_KEY (tally all prints the dev key)")
	}
	rep, err := generateLoad(ctx, cfg, logger)
	rep.print(os.Stdout, cfg)
	return err
}

// loopbackURL reports whether raw is a URL of this machine.
func loopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && isLoopbackHost(u.Hostname())
}

// devKeyFromDataDir returns the key `tally all` generated, if there is one.
func devKeyFromDataDir() string {
	dir := os.Getenv("TALLY_DATA_DIR")
	if dir == "" {
		dir = "./data"
	}
	b, err := os.ReadFile(filepath.Join(dir, "dev-api-key"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// generateLoad sends cfg.Events events and, with cfg.Verify, waits until
// their usage is exact. The error says why the run is not a success; the
// report holds what was measured up to then.
func generateLoad(ctx context.Context, cfg loadgenConfig, logger *slog.Logger) (loadgenReport, error) {
	if cfg.RunID == "" {
		b := make([]byte, 6)
		rand.Read(b)
		cfg.RunID = "lg-" + hex.EncodeToString(b)
	}
	rep := loadgenReport{RunID: cfg.RunID, FailedWhy: map[string]int{}}
	lg := &loadgen{cfg: cfg, logger: logger.With("component", "loadgen", "run", cfg.RunID), client: &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			MaxIdleConnsPerHost: cfg.Concurrency + 2,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}}
	defer lg.client.CloseIdleConnections()
	if cfg.Rate > 0 {
		lg.pace = &pacer{perEvent: time.Duration(float64(time.Second) / cfg.Rate)}
	}
	if cfg.Verify {
		if err := lg.ensureMeter(ctx); err != nil {
			return rep, err
		}
	}
	// from is a minute before the first event so clock steps and the
	// window rounding of the query never cut events off.
	from := time.Now().Add(-time.Minute)
	lastAck, err := lg.send(ctx, &rep)
	if err != nil {
		return rep, err
	}
	if rep.Ambiguous {
		// A request that failed with a transport error or a 5xx may have
		// been written anyway, so no single total would be the exact one.
		return rep, fmt.Errorf("%d requests failed (%v), some of them possibly written; usage not verified", rep.Failed, rep.FailedWhy)
	}
	if cfg.Verify {
		if err := lg.verify(ctx, &rep, from, lastAck); err != nil {
			return rep, err
		}
	}
	if rep.Failed > 0 {
		return rep, fmt.Errorf("%d requests failed (%v)", rep.Failed, rep.FailedWhy)
	}
	return rep, nil
}

// percentile returns the nearest-rank p-quantile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func (r *loadgenReport) setLatencies(lat []time.Duration) {
	slices.Sort(lat)
	r.LatencyP50, r.LatencyP90, r.LatencyP99 = percentile(lat, 0.50), percentile(lat, 0.90), percentile(lat, 0.99)
	if len(lat) > 0 {
		r.LatencyMax = lat[len(lat)-1]
	}
}

func (r *loadgenReport) print(w io.Writer, cfg loadgenConfig) {
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
	}
	compression := ""
	if cfg.Gzip {
		compression = "+gzip"
	}
	fmt.Fprintf(w, "run        %s: %d events, %d per request (%s%s), concurrency %d, %d customers\n",
		r.RunID, cfg.Events, cfg.Batch, cfg.Format, compression, cfg.Concurrency, cfg.Customers)
	failed := ""
	if r.Failed > 0 {
		failed = fmt.Sprintf(" by status %v", r.FailedWhy)
	}
	fmt.Fprintf(w, "accepted   %d events in %d requests (%d rejected, %d retries after 503, %d requests failed%s)\n",
		r.Accepted, r.Requests, r.Rejected, r.Retries, r.Failed, failed)
	fmt.Fprintf(w, "elapsed    %s, %.0f events/s\n", r.Elapsed.Round(time.Millisecond), r.PerSecond)
	fmt.Fprintf(w, "latency    p50 %s  p90 %s  p99 %s  max %s (per HTTP request)\n",
		ms(r.LatencyP50), ms(r.LatencyP90), ms(r.LatencyP99), ms(r.LatencyMax))
	switch {
	case !r.Verified:
		fmt.Fprintln(w, "usage      not verified")
	case r.Exact:
		fmt.Fprintf(w, "usage      exact: %s = %d × 0.1, billable %s after the last acknowledged request (polled every %s)\n",
			r.Got, r.Accepted, ms(r.BillableLatency), loadgenPollInterval)
	default:
		fmt.Fprintf(w, "usage      NOT exact: %s, expected %s (%s after the last acknowledged request) %s\n",
			r.Got, r.Expected, r.BillableLatency.Round(time.Millisecond), r.VerifyError)
	}
}

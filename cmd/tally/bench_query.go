package main

// tally bench, query at a store size (issue 7): a private ClickHouse is
// filled with the rows the aggregator writes for -bench.query-events
// events (events, event_identities, readings and readings_by_day, through
// the same materialized views, plus a retried insert of 1% of them that
// must fold), then each query of the issue runs through the query
// service's HTTP API (a `tally query` child process) and, as its limit,
// as the same SQL text (qusage.SQL) directly on clickhouse-go. Every
// answer of the API is checked against the totals the loader computed.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/chserver"
	qusage "github.com/tally-oss/tally/query/usage"
	"github.com/tally-oss/tally/schemas"
)

// benchQueryConfig sizes the store and the runs.
type benchQueryConfig struct {
	Events    int // -bench.query-events (bench.go)
	Customers int
	Runs      int // timed runs of each query, through the API and as bare SQL
	Warmup    int // untimed runs of each query before the timed ones
}

func init() {
	benchQuery = func(ctx context.Context, env benchQueryEnv) (any, error) {
		cfg := benchQueryConfig{Events: env.Events, Customers: 5000, Runs: 50, Warmup: 5}
		return runBenchQuery(ctx, cfg, env.Exe, env.Dir, env.Out, env.Logger)
	}
}

// The store's events: 30 days from benchQueryStart, which hold the DST
// changes of Europe/Berlin (25 October) and America/New_York (1 November).
var benchQueryStart = time.Date(2026, 10, 15, 0, 0, 0, 0, time.UTC)

const (
	benchQuerySpan   = 30 * 24 * 3600 // seconds
	benchQueryStride = 1_000_003      // event i is at second (i * stride) mod span
	benchQueryMeter  = "bench-query-tokens"
	benchQueryType   = "bench.query"
	benchQueryZone   = "America/New_York"
	benchQueryDupDiv = 100 // a retried insert of the first events/100 events
	benchQueryChunk  = 1_000_000
)

var (
	benchQueryRegions = []string{"us", "eu", "ap"}
	benchQueryTiers   = []string{"free", "pro", "team", "enterprise"}
)

// benchQueryEvent is event i of the store, as the loader's SQL computes it.
func benchQueryEvent(i, customers int) (customer int, at time.Time, value int64, region, tier string) {
	sec := int64(i) * benchQueryStride % benchQuerySpan
	ns := sec*1e9 + int64(i%1000)*1e6
	return i % customers, benchQueryStart.Add(time.Duration(ns)), int64(i%1000) + 1,
		benchQueryRegions[i%3], benchQueryTiers[i/3%4]
}

func benchQueryCustomer(c int) string { return "customer-" + strconv.Itoa(c) }

// The SQL of event number (a column of numbers()), equal to benchQueryEvent.
const (
	benchSQLCustomer = `concat('customer-', toString(number % {customers}))`
	benchSQLID       = `concat(lower(hex(cityHash64(number))), '-', toString(number))`
	benchSQLTime     = `toDateTime({start} + number * 1000003 % 2592000, 'UTC')`
	benchSQLTimeNs   = `toInt64({start} + number * 1000003 % 2592000) * 1000000000 + toInt64(number % 1000) * 1000000`
	benchSQLValue    = `number % 1000 + 1`
	benchSQLRegion   = `arrayElement(['us', 'eu', 'ap'], number % 3 + 1)`
	benchSQLTier     = `arrayElement(['free', 'pro', 'team', 'enterprise'], intDiv(number, 3) % 4 + 1)`
)

// benchQueryFigure is one query: through the API, and as bare SQL.
type benchQueryFigure struct {
	Name        string  `json:"name"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	TargetP99ms float64 `json:"p99_target_ms"`
	SQLP50ms    float64 `json:"sql_p50_ms"`
	SQLP99ms    float64 `json:"sql_p99_ms"`
	// RatioP99 is the API's p99 over the bare SQL's (target at most 1.5).
	RatioP99 float64 `json:"ratio_p99_to_sql"`
	RatioP50 float64 `json:"ratio_p50_to_sql"`
	// The fastest run of each: on a machine shared with other work, the
	// figure closest to the query's own cost.
	Minms    float64 `json:"min_ms"`
	SQLMinms float64 `json:"sql_min_ms"`
	Rows     int     `json:"rows"`
	RowsRead uint64  `json:"rows_read"` // by the bare SQL, from ClickHouse's progress packets
	Exact    bool    `json:"exact"`
}

type benchQueryReport struct {
	Events       int     `json:"events"`
	Customers    int     `json:"customers"`
	LoadSeconds  float64 `json:"load_seconds"`
	StoredEvents uint64  `json:"stored_readings_final"`
	// Bytes on disk per event of each table after the load (before
	// ClickHouse merged the retried 1% away).
	BytesPerEvent map[string]float64 `json:"bytes_per_event"`
	Queries       []benchQueryFigure `json:"queries"`
	Exact         bool               `json:"exact"`
	Error         string             `json:"error,omitempty"`
}

// benchQueryCase is one query of the issue and its expected answer, each
// row keyed by window start (RFC 3339) and group values.
type benchQueryCase struct {
	name   string
	target float64
	q      qusage.Query
	params url.Values
	want   map[string]decimal.Decimal
}

// runBenchQuery fills a private ClickHouse with cfg.Events events and
// measures the queries through a `tally query` child process
// (exe) and as bare SQL. It prints its lines to w. dir holds the server's
// data and the child's log.
func runBenchQuery(ctx context.Context, cfg benchQueryConfig, exe, dir string, w io.Writer, logger *slog.Logger) (*benchQueryReport, error) {
	rep := &benchQueryReport{Events: cfg.Events, Customers: cfg.Customers}
	srv, err := chserver.Start(ctx, chserver.Options{Dir: filepath.Join(dir, "query-clickhouse"), Logger: logger})
	if err != nil {
		return rep, err
	}
	defer func() { _ = srv.Stop() }()
	var ch chclient.Config
	fs := flag.NewFlagSet("clickhouse", flag.ContinueOnError)
	ch.RegisterFlags(fs)
	if err := fs.Parse([]string{"-clickhouse.addr=" + srv.Addr()}); err != nil {
		return rep, err
	}
	conn, err := openClickHouse(ctx, &ch, true, logger)
	if err != nil {
		return rep, err
	}
	defer conn.Close()

	addrs, err := benchAddrs(1)
	if err != nil {
		return rep, err
	}
	addr := addrs[0]
	c, err := startChild(ctx, exe, filepath.Join(dir, "query.log"), addr, "query",
		"-clickhouse.addr="+srv.Addr(), "-clickhouse.migrate=false", "-api-keys="+benchOrg+":"+benchKey,
		"-query.listen-addr="+addr, "-log.level=warn")
	if err != nil {
		return rep, err
	}
	defer c.stop()
	base := "http://" + addr
	meter, err := createBenchQueryMeter(ctx, base)
	if err != nil {
		return rep, err
	}

	began := time.Now()
	if err := benchQueryLoad(ctx, conn, cfg, meter.Revision); err != nil {
		return rep, fmt.Errorf("load: %w", err)
	}
	rep.LoadSeconds = round3(time.Since(began).Seconds())
	if err := conn.QueryRow(ctx, "SELECT count() FROM readings FINAL").Scan(&rep.StoredEvents); err != nil {
		return rep, err
	}
	if rep.BytesPerEvent, err = benchQueryBytes(ctx, conn, cfg.Events); err != nil {
		return rep, err
	}
	fmt.Fprintf(w, "\nquery (tally query -> private ClickHouse; %d events of %d customers over 30 days loaded in %.1f s, %d readings after folding a retried 1%%; %d runs each after %d warm-up)\n",
		cfg.Events, cfg.Customers, rep.LoadSeconds, rep.StoredEvents, cfg.Runs, cfg.Warmup)
	fmt.Fprintf(w, "%-40s %8s %8s %8s %8s %8s %6s %6s %8s %8s %10s %6s\n", "query", "p50 ms", "p99 ms", "target", "sql p50", "sql p99", "r p50", "r p99", "min", "sql min", "rows read", "exact")

	// Every event once: the retried 1% folded.
	rep.Exact = rep.StoredEvents == uint64(cfg.Events)
	for _, bc := range benchQueryCases(cfg, meter) {
		f, err := benchQueryRun(ctx, conn, base, bc, cfg)
		rep.Queries = append(rep.Queries, f)
		if err != nil {
			return rep, fmt.Errorf("%s: %w", bc.name, err)
		}
		rep.Exact = rep.Exact && f.Exact
		fmt.Fprintf(w, "%-40s %8.1f %8.1f %8.0f %8.1f %8.1f %6.2f %6.2f %8.1f %8.1f %10d %6v\n", f.Name, f.P50ms, f.P99ms, f.TargetP99ms,
			f.SQLP50ms, f.SQLP99ms, f.RatioP50, f.RatioP99, f.Minms, f.SQLMinms, f.RowsRead, f.Exact)
	}
	fmt.Fprintf(w, "bytes on disk per event:")
	for _, t := range slices.Sorted(maps.Keys(rep.BytesPerEvent)) {
		fmt.Fprintf(w, " %s %.1f", t, rep.BytesPerEvent[t])
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "r: the API's latency over the bare SQL's (qusage.SQL on clickhouse-go, rows drained), target <= 1.5\n")
	if !rep.Exact {
		return rep, errors.New("a query's answer differs from the loaded totals")
	}
	return rep, nil
}

// createBenchQueryMeter creates the benchmark's meter through the meters API
// and returns it with its revision.
func createBenchQueryMeter(ctx context.Context, base string) (schemas.Meter, error) {
	body, _ := json.Marshal(schemas.Meter{Key: benchQueryMeter, EventType: benchQueryType, Aggregation: schemas.AggSum,
		ValueProperty: "$.tokens", GroupBy: map[string]string{"region": "$.region", "tier": "$.tier"}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/meters", strings.NewReader(string(body)))
	if err != nil {
		return schemas.Meter{}, err
	}
	req.Header.Set("Authorization", "Bearer "+benchKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return schemas.Meter{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return schemas.Meter{}, fmt.Errorf("create meter: %d %s", resp.StatusCode, b)
	}
	var m schemas.Meter
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("create meter: %w", err)
	}
	if m.Revision == 0 {
		return m, fmt.Errorf("create meter: no revision in %s", b)
	}
	return m, nil
}

// benchQueryLoad inserts the events and readings of cfg.Events events with
// INSERT ... SELECT FROM numbers(), the readings and the events (with
// their identities, by the materialized view) at once, then again the
// first 1% of both, as a retried insert writes them.
func benchQueryLoad(ctx context.Context, conn driver.Conn, cfg benchQueryConfig, revision uint64) error {
	expand := func(s string) string {
		return strings.NewReplacer("{customers}", strconv.Itoa(cfg.Customers),
			"{start}", strconv.FormatInt(benchQueryStart.Unix(), 10)).Replace(s)
	}
	events := expand(`INSERT INTO events (org_id, customer_id, id, type, source, time, time_ns, properties, ingested_at, kafka_partition, kafka_offset)
		SELECT '` + benchOrg + `', ` + benchSQLCustomer + `, ` + benchSQLID + `, '` + benchQueryType + `', 'bench', ` + benchSQLTime + `, ` + benchSQLTimeNs + `,
		concat('{"tokens":', toString(` + benchSQLValue + `), ',"region":"', ` + benchSQLRegion + `, '","tier":"', ` + benchSQLTier + `, '"}'),
		` + benchSQLTime + `, toInt32(number % 6), toInt64(intDiv(number, 6)) FROM numbers({to}) WHERE number >= {from}`)
	readings := expand(`INSERT INTO readings (org_id, meter_key, meter_revision, customer_id, event_id, time, time_ns, value, distinct_value, group_keys, group_values, ingested_at)
		SELECT '` + benchOrg + `', '` + benchQueryMeter + `', toUInt64(` + strconv.FormatUint(revision, 10) + `), ` + benchSQLCustomer + `, ` + benchSQLID + `,
		` + benchSQLTime + `, ` + benchSQLTimeNs + `, toDecimal128(` + benchSQLValue + `, 12), '', ['region', 'tier'], [` + benchSQLRegion + `, ` + benchSQLTier + `],
		` + benchSQLTime + ` FROM numbers({to}) WHERE number >= {from}`)
	// Chunks of a million events, each insert within the driver's read
	// timeout on a loaded machine; then the retried 1%.
	type chunk struct{ from, to int }
	var chunks []chunk
	for from := 0; from < cfg.Events; from += benchQueryChunk {
		chunks = append(chunks, chunk{from, min(from+benchQueryChunk, cfg.Events)})
	}
	if cfg.Events > 0 {
		chunks = append(chunks, chunk{0, max(cfg.Events/benchQueryDupDiv, 1)})
	}
	for _, c := range chunks {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, sql := range []string{events, readings} {
			wg.Go(func() {
				errs[i] = conn.Exec(ctx, strings.NewReplacer("{to}", strconv.Itoa(c.to), "{from}", strconv.Itoa(c.from)).Replace(sql))
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	return nil
}

// benchQueryBytes returns the bytes on disk per event of every table
// holding rows.
func benchQueryBytes(ctx context.Context, conn driver.Conn, events int) (map[string]float64, error) {
	out := map[string]float64{}
	if events == 0 {
		return out, nil
	}
	rows, err := conn.Query(ctx, "SELECT table, sum(bytes_on_disk) FROM system.parts WHERE active AND database = currentDatabase() GROUP BY table")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var table string
		var bytes uint64
		if err := rows.Scan(&table, &bytes); err != nil {
			return nil, err
		}
		if v := float64(bytes) / float64(events); v >= 1 {
			out[table] = round3(v)
		}
	}
	return out, rows.Err()
}

// benchQueryCases are the three queries with their answers.
func benchQueryCases(cfg benchQueryConfig, meter schemas.Meter) []benchQueryCase {
	ny, _ := time.LoadLocation(benchQueryZone)
	customer := cfg.Customers / 2
	total := benchQueryCase{name: "1 customer, 31 days, total", target: 50, want: map[string]decimal.Decimal{}}
	total.q = qusage.ForMeter(benchOrg, meter, benchQueryStart.AddDate(0, 0, -1), benchQueryStart.AddDate(0, 0, 30))
	total.q.CustomerIDs = []string{benchQueryCustomer(customer)}

	daily := benchQueryCase{name: "1 customer, 31 days by day (NY), 2 keys", target: 150, want: map[string]decimal.Decimal{}}
	daily.q = qusage.ForMeter(benchOrg, meter, time.Date(2026, 10, 14, 0, 0, 0, 0, ny), time.Date(2026, 11, 14, 0, 0, 0, 0, ny))
	daily.q.CustomerIDs, daily.q.GroupBy = total.q.CustomerIDs, []string{"region", "tier"}
	daily.q.WindowSize, daily.q.Location = qusage.WindowDay, ny

	day := benchQueryCase{name: "1 day, all customers, by customer", target: 300, want: map[string]decimal.Decimal{}}
	day.q = qusage.ForMeter(benchOrg, meter, benchQueryStart.AddDate(0, 0, 5), benchQueryStart.AddDate(0, 0, 6))
	day.q.GroupBy = []string{schemas.CustomerGroupKey}

	in := func(q qusage.Query, t time.Time) bool { return !t.Before(q.From) && t.Before(q.To) }
	add := func(m map[string]decimal.Decimal, key string, v int64) { m[key] = m[key].Add(decimal.NewFromInt(v)) }
	for i := range cfg.Events {
		c, at, v, region, tier := benchQueryEvent(i, cfg.Customers)
		if c == customer && in(total.q, at) {
			add(total.want, benchQueryKey(total.q.From, nil), v)
		}
		if c == customer && in(daily.q, at) {
			add(daily.want, benchQueryKey(qusage.WindowDay.Start(at, ny), []string{region, tier}), v)
		}
		if in(day.q, at) {
			add(day.want, benchQueryKey(day.q.From, []string{benchQueryCustomer(c)}), v)
		}
	}
	cases := []benchQueryCase{total, daily, day}
	for i := range cases {
		q := cases[i].q
		p := url.Values{"from": {q.From.Format(time.RFC3339Nano)}, "to": {q.To.Format(time.RFC3339Nano)}}
		if q.WindowSize != qusage.WindowNone {
			p.Set("window_size", string(q.WindowSize))
			p.Set("window_time_zone", q.Location.String())
		}
		p["customer_id"], p["group_by"] = q.CustomerIDs, q.GroupBy
		cases[i].params = p
	}
	return cases
}

func benchQueryKey(windowStart time.Time, groups []string) string {
	return windowStart.UTC().Format(time.RFC3339) + "|" + strings.Join(groups, "|")
}

// benchQueryRun times bc through the API and as bare SQL, alternating
// the two run by run so that both see the same machine, and checks the
// API's answer.
func benchQueryRun(ctx context.Context, conn driver.Conn, base string, bc benchQueryCase, cfg benchQueryConfig) (benchQueryFigure, error) {
	f := benchQueryFigure{Name: bc.name, TargetP99ms: bc.target}
	sql, args, err := qusage.SQL(bc.q, 100_000)
	if err != nil {
		return f, err
	}
	u := base + "/api/v1/meters/" + url.PathEscape(benchQueryMeter) + "/query?" + bc.params.Encode()
	client := &http.Client{Timeout: time.Minute}
	var last []byte
	api := func() (time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+benchKey)
		t := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%d %s", resp.StatusCode, b)
		}
		last = b
		return d, err
	}
	var rowsRead atomic.Uint64
	bare := func() (time.Duration, error) {
		rowsRead.Store(0)
		qctx := clickhouse.Context(ctx, clickhouse.WithProgress(func(p *clickhouse.Progress) { rowsRead.Add(p.Rows) }))
		t := time.Now()
		rows, err := conn.Query(qctx, sql, args...)
		if err != nil {
			return 0, err
		}
		for rows.Next() {
		}
		err = errors.Join(rows.Err(), rows.Close())
		return time.Since(t), err
	}
	var apiLat, sqlLat []time.Duration
	for i := range cfg.Warmup + cfg.Runs {
		a, err := api()
		if err != nil {
			return f, fmt.Errorf("API: %w", err)
		}
		s, err := bare()
		if err != nil {
			return f, fmt.Errorf("bare SQL: %w", err)
		}
		if i >= cfg.Warmup {
			apiLat, sqlLat = append(apiLat, a), append(sqlLat, s)
		}
	}
	slices.Sort(apiLat)
	slices.Sort(sqlLat)
	f.P50ms, f.P99ms = ms(percentile(apiLat, 0.5)), ms(percentile(apiLat, 0.99))
	f.SQLP50ms, f.SQLP99ms = ms(percentile(sqlLat, 0.5)), ms(percentile(sqlLat, 0.99))
	f.Minms, f.SQLMinms = ms(apiLat[0]), ms(sqlLat[0])
	if f.SQLP50ms > 0 && f.SQLP99ms > 0 {
		f.RatioP50, f.RatioP99 = round3(f.P50ms/f.SQLP50ms), round3(f.P99ms/f.SQLP99ms)
	}
	f.RowsRead = rowsRead.Load()

	var body struct {
		Data []struct {
			WindowStart string            `json:"window_start"`
			CustomerID  *string           `json:"customer_id"`
			GroupBy     map[string]string `json:"group_by"`
			Value       json.Number       `json:"value"`
		} `json:"data"`
	}
	if err := json.Unmarshal(last, &body); err != nil {
		return f, fmt.Errorf("API answer: %w", err)
	}
	f.Rows = len(body.Data)
	got := map[string]decimal.Decimal{}
	for _, r := range body.Data {
		start, err := time.Parse(time.RFC3339Nano, r.WindowStart)
		if err != nil {
			return f, fmt.Errorf("API answer: %w", err)
		}
		var groups []string
		for _, k := range bc.q.GroupBy {
			if k == schemas.CustomerGroupKey && r.CustomerID != nil {
				groups = append(groups, *r.CustomerID)
			} else {
				groups = append(groups, r.GroupBy[k])
			}
		}
		v, err := decimal.NewFromString(r.Value.String())
		if err != nil {
			return f, fmt.Errorf("API answer: %w", err)
		}
		got[benchQueryKey(start, groups)] = v
	}
	f.Exact = len(got) == len(bc.want)
	for k, v := range bc.want {
		if !got[k].Equal(v) {
			f.Exact = false
		}
	}
	return f, nil
}

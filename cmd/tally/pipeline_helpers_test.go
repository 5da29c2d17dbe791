package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/aggregator"
	"github.com/tally-oss/tally/ingest"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/kafkaclient"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/query"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// API keys of the two organizations every pipeline test has.
const (
	acmeKey   = "acme-test-key-0123456789"
	globexKey = "globex-test-key-0123456789"
)

// pipeline is the whole of Tally wired as `tally all` wires it, on the
// real in-process Kafka-protocol broker and a private ClickHouse server.
type pipeline struct {
	t         *testing.T
	flags     allFlags
	conn      driver.Conn
	keys      *httpapi.Keys
	logger    *slog.Logger
	ingestURL string
	queryURL  string
	apiURL    string // the one base URL of every route, as `tally all` serves on :8000
	querySvc  *query.Service
	ingestSvc *ingest.Service
	aggURL    string
	stopAgg   func()
}

// startPipeline starts ingest, aggregator and query. Extra flags override
// the test defaults. Events may be up to ten years old so that tests can
// use fixed dates (DST changes, month ends).
func startPipeline(t *testing.T, extra ...string) *pipeline {
	t.Helper()
	p := &pipeline{t: t, logger: slog.New(slog.DiscardHandler)}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	p.flags.register(fs)
	args := append([]string{
		// The aggregator restarts on its port (startAggregator), where the
		// status probes it.
		"-ingest.listen-addr=127.0.0.1:0", "-query.listen-addr=127.0.0.1:0", "-aggregator.listen-addr=127.0.0.1:" + strconv.Itoa(testenv.StablePort(t)),
		"-ingest.max-event-age=87600h", "-aggregator.batch-linger=20ms", "-kafka.partitions=3",
		"-aggregator.session-timeout=6s", "-aggregator.heartbeat-interval=500ms",
	}, extra...)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	addr, database := testenv.NewDatabase(t)
	p.flags.ch.Addr, p.flags.ch.Database = addr, database
	p.flags.kafka.Brokers = testenv.Kafka(t)
	ctx := context.Background()
	if err := p.flags.kafka.EnsureTopics(ctx, kafkaclient.TopicConfigs{}); err != nil {
		t.Fatal(err)
	}
	conn, err := openClickHouse(ctx, &p.flags.ch, true, p.logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p.conn = conn
	p.keys = &httpapi.Keys{}
	if err := p.keys.AddSpec("acme:" + acmeKey + ",globex:" + globexKey); err != nil {
		t.Fatal(err)
	}
	if err := p.flags.keys.load(p.keys); err != nil { // -api-keys among the extra flags
		t.Fatal(err)
	}

	in, err := newIngest(p.flags.ingest, &p.flags.kafka, p.keys, conn, p.logger)
	if err != nil {
		t.Fatal(err)
	}
	p.ingestURL = "http://" + p.run("ingest", in)
	p.ingestSvc = in
	agg := p.startAggregator()
	// As `tally all` does: the status reports this ingest and aggregator.
	if !isSet(fs, "query.status-components") {
		if p.flags.query.StatusComponents, err = localStatusComponents(in, agg); err != nil {
			t.Fatal(err)
		}
	}
	q, err := newQuery(p.flags.query, conn, p.keys, p.logger)
	if err != nil {
		t.Fatal(err)
	}
	p.queryURL = "http://" + p.run("query", q)
	p.querySvc = q
	p.apiURL = "http://" + p.run("api", newAPIGateway("127.0.0.1:0", ingest.PublicPaths, in.Handler(), q.Handler(), p.logger))
	return p
}

// run starts svc until the test ends and returns its address.
func (p *pipeline) run(name string, svc runner) (addr string) {
	p.t.Helper()
	if err := svc.Listen(); err != nil {
		p.t.Fatalf("%s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				p.t.Errorf("%s stopped with: %v", name, err)
			}
		case <-time.After(30 * time.Second):
			p.t.Errorf("%s did not stop within 30s", name)
		}
	}
	p.t.Cleanup(stop)
	if name == "aggregator" {
		p.stopAgg = stop
	}
	return svc.Addr()
}

// startAggregator starts an aggregator (again) in the test's group, on
// the same port.
func (p *pipeline) startAggregator() *aggregator.Service {
	p.t.Helper()
	agg, err := newAggregator(p.flags.aggregator, &p.flags.kafka, &p.flags.ch, p.conn, p.logger)
	if err != nil {
		p.t.Fatal(err)
	}
	p.aggURL = "http://" + p.run("aggregator", agg)
	return agg
}

// do sends a request and returns the status and body.
func (p *pipeline) do(method, url, key, contentType string, body []byte, header ...string) (int, []byte) {
	p.t.Helper()
	resp, err := http.DefaultClient.Do(newRequest(p.t, method, url, key, contentType, body, header...))
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// newRequest builds a request as the organization of key (none when key
// is empty), of contentType (none when empty), with the name-value pairs
// of header.
func newRequest(t testing.TB, method, url, key, contentType string, body []byte, header ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

// mustAPI sends a JSON request to the one base URL as the organization of
// key and fails the test unless the status is want; it returns the body.
func (p *pipeline) mustAPI(key, method, path, body string, want int, header ...string) []byte {
	p.t.Helper()
	code, resp := p.do(method, p.apiURL+path, key, "application/json", []byte(body), header...)
	if code != want {
		p.t.Fatalf("%s %s: %d %s, want %d", method, path, code, resp, want)
	}
	return resp
}

// createMeter creates a meter for the organization of key.
func (p *pipeline) createMeter(key, definition string) {
	p.t.Helper()
	code, body := p.do("POST", p.queryURL+"/api/v1/meters", key, "application/json", []byte(definition))
	if code != http.StatusCreated {
		p.t.Fatalf("create meter: %d %s", code, body)
	}
}

// postEvents posts events as a JSON array and expects 202 with every
// event accepted.
func (p *pipeline) postEvents(key string, events ...map[string]any) {
	p.t.Helper()
	body, _ := json.Marshal(events)
	code, resp := p.do("POST", p.ingestURL+"/api/v1/events", key, "application/json", body)
	if code != http.StatusAccepted || !strings.Contains(string(resp), fmt.Sprintf(`"accepted":%d,"rejected":[]`, len(events))) {
		p.t.Fatalf("post events: %d %s", code, resp)
	}
}

// postNDJSONGzip posts events as gzip-compressed NDJSON.
func (p *pipeline) postNDJSONGzip(key string, events ...map[string]any) {
	p.t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, ev := range events {
		line, _ := json.Marshal(ev)
		zw.Write(append(line, '\n'))
	}
	zw.Close()
	code, resp := p.do("POST", p.ingestURL+"/api/v1/events", key, "application/x-ndjson", buf.Bytes(), "Content-Encoding", "gzip")
	if code != http.StatusAccepted {
		p.t.Fatalf("post NDJSON: %d %s", code, resp)
	}
}

type usageRow struct {
	WindowStart string            `json:"window_start"`
	WindowEnd   string            `json:"window_end"`
	GroupBy     map[string]string `json:"group_by"`
	Value       json.Number       `json:"value"`
}

// usage queries a meter and returns its rows as "group=value ... => value"
// lines (with the window start first when windowed).
func (p *pipeline) usage(key, meter string, params url.Values) []string {
	p.t.Helper()
	code, body := p.do("GET", p.queryURL+"/api/v1/meters/"+meter+"/query?"+params.Encode(), key, "", nil)
	if code != http.StatusOK {
		p.t.Fatalf("query %s: %d %s", meter, code, body)
	}
	var resp struct {
		Data []usageRow `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&resp); err != nil {
		p.t.Fatal(err)
	}
	lines := []string{}
	for _, r := range resp.Data {
		var parts []string
		if params.Get("window_size") != "" {
			parts = append(parts, r.WindowStart+".."+r.WindowEnd)
		}
		for _, k := range params["group_by"] {
			parts = append(parts, k+"="+r.GroupBy[k])
		}
		parts = append(parts, "=> "+r.Value.String())
		lines = append(lines, strings.Join(parts, " "))
	}
	return lines
}

// waitUsage polls until the meter's usage is want or the deadline passes.
func (p *pipeline) waitUsage(key, meter string, params url.Values, want ...string) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got []string
	for {
		got = p.usage(key, meter, params)
		if strings.Join(got, "\n") == strings.Join(want, "\n") {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("usage of %s %s:\n got: %q\nwant: %q", meter, params.Encode(), got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// count returns a single number from ClickHouse.
func (p *pipeline) count(query string, args ...any) uint64 {
	p.t.Helper()
	var n uint64
	if err := p.conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		p.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// ev builds an event.
func ev(id, typ, customer, at string, props map[string]any) map[string]any {
	e := map[string]any{"id": id, "type": typ, "customer_id": customer, "properties": props}
	if at != "" {
		e["time"] = at
	}
	return e
}

// params builds query parameters from alternating names and values.
func params(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// waitFor polls cond for up to 30 s and fails with describe() if it never holds.
func waitFor(t *testing.T, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(describe())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

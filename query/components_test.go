package query

import (
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/testenv"
)

func TestStatusComponentsFlag(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"-query.status-components= ingest=http://ingest:8080/readyz , aggregator=https://10.0.0.2:8082/readyz,"}); err != nil {
		t.Fatal(err)
	}
	want := StatusComponents{{"ingest", "http://ingest:8080/readyz"}, {"aggregator", "https://10.0.0.2:8082/readyz"}}
	if len(c.StatusComponents) != 2 || c.StatusComponents[0] != want[0] || c.StatusComponents[1] != want[1] {
		t.Errorf("parsed %+v", c.StatusComponents)
	}
	if got := fs.Lookup("query.status-components").Value.String(); got != "ingest=http://ingest:8080/readyz,aggregator=https://10.0.0.2:8082/readyz" {
		t.Errorf("String() = %q", got)
	}
	if err := fs.Set("query.status-components", ""); err != nil || len(c.StatusComponents) != 0 {
		t.Errorf("empty: %v %v", c.StatusComponents, err)
	}
	for value, problem := range map[string]string{
		"ingest":                                        "want name=URL",
		"Ingest=http://i:1/readyz":                      `name "Ingest"`,
		"=http://i:1/readyz":                            `name ""`,
		"query=http://q:1/readyz":                       "reports itself",
		"a=http://i:1/readyz,a=http://j:1/readyz":       "given twice",
		"a=ftp://i/readyz":                              "want an http:// or https:// URL",
		"a=i:8080/readyz":                               "want an http:// or https:// URL",
		"a=http:///readyz":                              "want an http:// or https:// URL",
		"a=http://i:1/readyz#x":                         "want an http:// or https:// URL",
		"a=http://i:1/%zz":                              "invalid URL escape",
		strings.Repeat("a=http://i:1/readyz,", 2) + "b": "want name=URL",
	} {
		err := fs.Set("query.status-components", value)
		if err == nil || !strings.Contains(err.Error(), problem) {
			t.Errorf("%q: %v, want %q", value, err, problem)
		}
	}
	var many []string
	for i := range MaxStatusComponents + 1 {
		many = append(many, "c"+strings.Repeat("x", i)+"=http://c:1/readyz")
	}
	if err := fs.Set("query.status-components", strings.Join(many, ",")); err == nil || !strings.Contains(err.Error(), "at most 16") {
		t.Errorf("%d components: %v", len(many), err)
	}
	bad := Config{ListenAddr: "x:1", MaxRows: 1, Timeout: time.Second, StatusComponents: StatusComponents{{"ingest", "nope"}}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "query.status-components: ingest") {
		t.Errorf("Validate: %v", err)
	}
}

// TestStatusComponents: the status lists the query service and then each
// configured component, probed on its /readyz: ready, not ready with
// which checks fail, and the fixed phrases for hung, unreachable and
// oversized or foreign answers. Nothing of what a component said beyond
// its check names, and none of the components' addresses, reaches the
// caller (any organization's key sees it). A component that is not ready
// leaves the status 200. The probes are cached: requests within
// ProbeCacheTTL probe nothing.
func TestStatusComponents(t *testing.T) {
	const secret = "dial tcp 10.9.8.7:9092: lookup kafka-secret-host: no such host"
	var readyHits, notReadyHits atomic.Int64
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		readyHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ready","checks":{"clickhouse":"ok","kafka":"ok"}}`))
	}))
	defer ready.Close()
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		notReadyHits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"status":"not ready","checks":{"kafka":"` + secret + `","partitions":"ok"}}`))
	}))
	defer notReady.Close()
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // past the probe's timeout: until the prober hangs up
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hung.Close()
	defer close(release)
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"ready","checks":{"x":"` + strings.Repeat("y", MaxProbeBytes) + `"}}`))
	}))
	defer huge.Close()
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`<html>secret-internal-page</html>`))
	}))
	defer foreign.Close()
	oddName := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"ready","checks":{"password=hunter2 at db.internal":"ok"}}`))
	}))
	defer oddName.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := "http://" + ln.Addr().String() + "/readyz"
	ln.Close() // nothing listens there now

	servers := map[string]string{
		"ingest": ready.URL, "aggregator": notReady.URL, "hung": hung.URL, "gone": unreachable,
		"huge": huge.URL, "foreign": foreign.URL, "odd": oddName.URL,
	}
	var list StatusComponents
	for _, name := range []string{"ingest", "aggregator", "hung", "gone", "huge", "foreign", "odd"} {
		list = append(list, StatusComponent{Name: name, URL: servers[name] + "/readyz"})
	}
	e := newEnv(t, func(c *Config) { c.StatusComponents = list })
	clock := testenv.NewClock(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	e.svc.probes.now = clock.Now

	code, body, _ := e.do("GET", "/api/v1/status", keyAcme, nil)
	if code != http.StatusOK {
		t.Fatalf("status with components not ready: %d %s, want 200", code, body)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	want := `[{"name":"query","ready":true,"checks":{"clickhouse":"ok"},"error":""},` +
		`{"name":"ingest","ready":true,"checks":{"clickhouse":"ok","kafka":"ok"},"error":""},` +
		`{"name":"aggregator","ready":false,"checks":{"kafka":"failing","partitions":"ok"},"error":""},` +
		`{"name":"hung","ready":false,"checks":{},"error":"timed out"},` +
		`{"name":"gone","ready":false,"checks":{},"error":"unreachable"},` +
		`{"name":"huge","ready":false,"checks":{},"error":"bad answer"},` +
		`{"name":"foreign","ready":false,"checks":{},"error":"bad answer"},` +
		`{"name":"odd","ready":false,"checks":{},"error":"bad answer"}]`
	if string(raw["components"]) != want {
		t.Errorf("components:\n got %s\nwant %s", raw["components"], want)
	}
	if !strings.Contains(string(raw["clickhouse"]), `"ok":true`) {
		t.Errorf("clickhouse: %s", raw["clickhouse"])
	}
	for _, leak := range []string{"10.9.8.7", "kafka-secret-host", "no such host", "secret-internal-page", "hunter2", "db.internal", "127.0.0.1", "yyyy"} {
		if strings.Contains(string(body), leak) {
			t.Errorf("the status passes on %q: %s", leak, body)
		}
	}
	for _, u := range servers {
		if port := u[strings.LastIndex(u, ":")+1:]; strings.Contains(string(body), port) {
			t.Errorf("the status names the port %s of a component: %s", port, body)
		}
	}

	// Within the cache window: no probe; the same answer.
	for range 5 {
		code, again, _ := e.do("GET", "/api/v1/status", keyGlobex, nil)
		var r map[string]json.RawMessage
		if err := json.Unmarshal(again, &r); err != nil || code != http.StatusOK || string(r["components"]) != want {
			t.Errorf("cached status: %d %s", code, again)
		}
	}
	if readyHits.Load() != 1 || notReadyHits.Load() != 1 {
		t.Errorf("six requests within the cache window probed %d and %d times, want 1", readyHits.Load(), notReadyHits.Load())
	}
	clock.Advance(ProbeCacheTTL)
	e.do("GET", "/api/v1/status", keyAcme, nil)
	if readyHits.Load() != 2 || notReadyHits.Load() != 2 {
		t.Errorf("after the cache window: probed %d and %d times, want 2", readyHits.Load(), notReadyHits.Load())
	}
}

// TestStatusComponentsCallerGone: a caller that stops waiting gets its
// components as timed out, and the round it waited for still completes
// for the next caller.
func TestStatusComponentsCallerGone(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write([]byte(`{"status":"ready"}`))
	}))
	defer slow.Close()
	p := newProber(StatusComponents{{"ingest", slow.URL + "/readyz"}}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	got := p.get(ctx)
	if len(got) != 1 || got[0].Name != "ingest" || got[0].Ready || got[0].Error != ProbeTimedOut {
		t.Errorf("caller gone: %+v", got)
	}
	close(release)
	got = p.get(t.Context())
	if len(got) != 1 || !got[0].Ready || got[0].Error != "" || len(got[0].Checks) != 0 {
		t.Errorf("next caller: %+v", got)
	}
}

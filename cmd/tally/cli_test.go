package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/client"
)

// cliRun runs a client verb against p as the acme organization and returns
// what it printed on stdout, and its error.
func cliRun(t *testing.T, p *pipeline, stdin string, verb func(ctx context.Context, args []string, stdin *strings.Reader, stdout, stderr *bytes.Buffer) error, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append([]string{"-url=" + p.apiURL, "-key=" + acmeKey}, args...)
	err := verb(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return stdout.String(), err
}

func sendVerb(ctx context.Context, args []string, stdin *strings.Reader, stdout, stderr *bytes.Buffer) error {
	return sendCommand(ctx, args, stdin, stdout, stderr)
}

func usageVerb(ctx context.Context, args []string, _ *strings.Reader, stdout, stderr *bytes.Buffer) error {
	return usageCommand(ctx, args, stdout, stderr)
}

func metersVerb(ctx context.Context, args []string, stdin *strings.Reader, stdout, stderr *bytes.Buffer) error {
	return metersCommand(ctx, args, stdin, stdout, stderr)
}

func writeFile(t *testing.T, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The client verbs against the whole pipeline: meters from a file, events
// as NDJSON, a gzipped JSON array and a single object on stdin, usage as a
// table, CSV and JSON, then the meter deleted. Every output is compared
// whole.
func TestCLIVerbs(t *testing.T) {
	p := startPipeline(t)

	meters := writeFile(t, "meters.json", []byte(`[
	  {"key": "tokens", "event_type": "llm.completion", "aggregation": "SUM",
	   "value_property": "$.usage.tokens", "group_by": {"model": "$.model"}},
	  {"key": "calls", "event_type": "llm.completion", "aggregation": "COUNT"}
	]`))
	out, err := cliRun(t, p, "", metersVerb, "create", "-f", meters)
	if err != nil || out != "created tokens\ncreated calls\n" {
		t.Fatalf("meters create: %v\n%s", err, out)
	}
	out, err = cliRun(t, p, "", metersVerb, "list")
	wantList := "" +
		"key     event_type      aggregation  value_property  group_by\n" +
		"calls   llm.completion  COUNT        -               -\n" +
		"tokens  llm.completion  SUM          $.usage.tokens  model\n"
	if err != nil || out != wantList {
		t.Fatalf("meters list: %v\n%s\nwant\n%s", err, out, wantList)
	}
	out, err = cliRun(t, p, "", metersVerb, "get", "tokens")
	if err != nil || !strings.Contains(out, `"value_property": "$.usage.tokens"`) {
		t.Fatalf("meters get: %v\n%s", err, out)
	}
	if _, err := cliRun(t, p, "", metersVerb, "get", "missing"); err == nil || !strings.Contains(err.Error(), "404 not_found") {
		t.Fatalf("meters get of a missing meter: %v", err)
	}

	// NDJSON, the second event rejected (from the future), the third
	// without an id (the client gives it one).
	ndjson := writeFile(t, "events.ndjson", []byte(
		`{"id": "e1", "type": "llm.completion", "customer_id": "acme", "time": "2026-03-02T10:00:00Z", "properties": {"model": "a", "usage": {"tokens": 0.000000000001}}}`+"\n"+
			`{"id": "e2", "type": "llm.completion", "customer_id": "acme", "time": "2999-01-01T00:00:00Z", "properties": {"model": "a", "usage": {"tokens": 5}}}`+"\n"+
			`{"type": "llm.completion", "customer_id": "initech", "time": "2026-03-03T10:00:00Z", "properties": {"model": "b", "usage": {"tokens": 10}}}`+"\n"))
	out, err = cliRun(t, p, "", sendVerb, ndjson)
	if err == nil || err.Error() != "1 of 3 events rejected" || !strings.HasPrefix(out, "accepted 2, rejected 1\n  \"e2\" ("+ndjson+" line 2): time: ") {
		t.Fatalf("send NDJSON: %v\n%s", err, out)
	}
	// A gzipped JSON array; e1 again (counted once), and a single object
	// on stdin.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(`[{"id": "e1", "type": "llm.completion", "customer_id": "acme", "time": "2026-03-02T10:00:00Z", "properties": {"model": "a", "usage": {"tokens": 0.000000000001}}},
	  {"id": "e4", "type": "llm.completion", "customer_id": "acme", "time": "2026-03-02T23:30:00-05:00", "properties": {"model": "b", "usage": {"tokens": 100.5}}}]`))
	_ = zw.Close()
	out, err = cliRun(t, p, `{"id": "e5", "type": "llm.completion", "customer_id": "initech", "time": "2026-03-03T11:00:00Z", "properties": {"model": "b", "usage": {"tokens": 1}}}`,
		sendVerb, writeFile(t, "events.json.gz", gz.Bytes()), "-")
	if err != nil || out != "accepted 3, rejected 0\n" {
		t.Fatalf("send gzip and stdin: %v\n%s", err, out)
	}

	// Usage: e1 once, e4 in New York's March 2 but UTC's March 3.
	march := []string{"-from=2026-03-01T00:00:00Z", "-to=2026-04-01T00:00:00Z"}
	wantTable := "" +
		"customer_id  model  value\n" +
		"acme         a      0.000000000001\n" +
		"acme         b      100.5\n" +
		"initech      b      11\n"
	waitCLIOutput(t, p, wantTable, append([]string{"tokens", "-group-by", "customer_id,model"}, march...)...)
	wantCSV := "" +
		"window_start,window_end,value\n" +
		"2026-03-02T00:00:00-05:00,2026-03-03T00:00:00-05:00,100.500000000001\n"
	waitCLIOutput(t, p, wantCSV, append(march, "tokens", "-window-size=day", "-time-zone=America/New_York", "-customer=acme", "-o", "csv")...)
	wantJSON := `{
  "meter": "tokens",
  "from": "2026-03-01T00:00:00Z",
  "to": "2026-04-01T00:00:00Z",
  "window_size": null,
  "window_time_zone": "UTC",
  "data": [
    {
      "window_start": "2026-03-01T00:00:00Z",
      "window_end": "2026-04-01T00:00:00Z",
      "group_by": {
        "model": "b"
      },
      "value": 111.5
    }
  ]
}
`
	waitCLIOutput(t, p, wantJSON, append(march, "tokens", "-filter", "model=b", "-group-by=model", "-o", "json")...)
	if _, err := cliRun(t, p, "", usageVerb, "tokens", "-group-by=colour"); err == nil || !strings.Contains(err.Error(), "400 validation_failed") {
		t.Fatalf("usage with an unknown group key: %v", err)
	}

	out, err = cliRun(t, p, "", metersVerb, "delete", "calls")
	if err != nil || out != "deleted calls\n" {
		t.Fatalf("meters delete: %v\n%s", err, out)
	}
	if _, err := cliRun(t, p, "", usageVerb, "calls"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("usage of a deleted meter: %v", err)
	}
}

// waitCLIOutput runs `tally usage args...` until it prints want, for at
// most a minute. Polling, because one INSERT of the aggregator becomes
// visible part by part (ClickHouse writes a part per partition and per
// copy of readings): right after the events are stored one query may
// already see a row that another does not yet.
func waitCLIOutput(t *testing.T, p *pipeline, want string, args ...string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := cliRun(t, p, "", usageVerb, args...)
		if err == nil && out == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tally usage %s printed, after a minute:\n%s(error %v)\nwant\n%s", strings.Join(args, " "), out, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A bad key is an error naming the status; input that is not JSON stops
// the command with the file and the event.
func TestCLIErrors(t *testing.T) {
	p := startPipeline(t)
	var stdout, stderr bytes.Buffer
	err := sendCommand(context.Background(), []string{"-url=" + p.apiURL, "-key=not-a-key-0123456789"},
		strings.NewReader(`{"id": "e1", "type": "t", "customer_id": "c"}`), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "401 unauthorized") || stdout.String() != "accepted 0, rejected 0, failed 1\n" {
		t.Fatalf("send with a bad key: %v\n%s", err, stdout.String())
	}
	// Nothing listening: retried for -retry-for, each retry on stderr, then
	// failed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	ln.Close()
	stdout.Reset()
	stderr.Reset()
	err = sendCommand(context.Background(), []string{"-url=" + deadURL, "-key=" + acmeKey, "-retry-for=500ms"},
		strings.NewReader(`{"id": "e1", "type": "t", "customer_id": "c"}`), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "connection refused") || stdout.String() != "accepted 0, rejected 0, failed 1\n" ||
		!strings.HasPrefix(stderr.String(), "retrying in ") {
		t.Fatalf("send to nothing: %v\nstdout %s\nstderr %s", err, stdout.String(), stderr.String())
	}
	if err := sendCommand(context.Background(), []string{"-url=127.0.0.1:8000", "-key=" + acmeKey}, strings.NewReader(""), &stdout, &stderr); err == nil ||
		!strings.Contains(err.Error(), "must be a URL") {
		t.Fatalf("a -url without a scheme: %v", err)
	}

	out, err := cliRun(t, p, "{\"id\": \"e1\", \"type\": \"t\", \"customer_id\": \"c\"}\n{\"id\": oops}\n", sendVerb)
	if err == nil || !strings.Contains(err.Error(), "stdin line 2 (event 2): invalid character") ||
		out != "accepted 1, rejected 0\nreading stopped: the 1 events before stdin line 2 were sent (counted above); send the input from there on, not all of it again (an event without an id would count twice)\n" {
		t.Fatalf("send of broken NDJSON: %v\n%s", err, out)
	}
}

// TALLY_URL and TALLY_KEY stand in for -url and -key, a flag wins over
// them, and without a key the dev key of TALLY_DATA_DIR is used.
func TestCLIEnvironment(t *testing.T) {
	p := startPipeline(t, "-api-keys=dev:"+devKey)
	t.Setenv("TALLY_URL", p.apiURL)
	t.Setenv("TALLY_KEY", acmeKey)
	meters := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := metersCommand(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
		return stdout.String(), err
	}
	if out, err := meters("list"); err != nil || !strings.HasPrefix(out, "key ") {
		t.Fatalf("with TALLY_URL and TALLY_KEY: %v\n%s", err, out)
	}
	if _, err := meters("list", "-key=not-a-key-0123456789"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("-key over TALLY_KEY: %v, want 401", err)
	}
	t.Setenv("TALLY_KEY", "")
	t.Setenv("TALLY_DATA_DIR", t.TempDir())
	if _, err := meters("list"); err == nil || !strings.Contains(err.Error(), "no API key") {
		t.Fatalf("without any key: %v", err)
	}
	if err := os.WriteFile(filepath.Join(os.Getenv("TALLY_DATA_DIR"), "dev-api-key"), []byte(devKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := meters("list"); err != nil || !strings.HasPrefix(out, "key ") {
		t.Fatalf("with the dev key of TALLY_DATA_DIR: %v\n%s", err, out)
	}
	t.Setenv("TALLY_TIMEOUT", "soon")
	if _, err := meters("list"); err == nil || !strings.Contains(err.Error(), "TALLY_TIMEOUT") {
		t.Fatalf("a bad TALLY_TIMEOUT: %v", err)
	}
}

// review9a F2: the dev key that `tally all` writes into the local data
// directory is a credential of this machine's Tally; without -key and
// TALLY_KEY it must not be sent to another host (TALLY_URL of a staging or
// production deployment, a typo'd host, a proxy that logs headers).
func TestCLIDevKeyOnlyForLocalURL(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dev-api-key"), []byte("tally_dev_0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TALLY_DATA_DIR", dir)
	for _, u := range []string{"https://tally.example.com", "http://10.1.2.3:8000", "http://127.0.0.1.example.com:8000"} {
		c := connFlags{url: u}
		if _, err := c.client(); err == nil || !strings.Contains(err.Error(), "no API key") {
			t.Errorf("-url %s without -key: err %v and key %q; want no API key (the dev key stays local)", u, err, c.key)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"} {
		c := connFlags{url: u}
		if _, err := c.client(); err != nil || c.key != "tally_dev_0123456789abcdef" {
			t.Errorf("-url %s without -key: err %v and key %q; want the dev key", u, err, c.key)
		}
	}
}

// review9a F6: a meter key that is a dot segment ("." or "..") or empty
// goes into the URL path as it is; the server's path cleaning redirects it
// to another route, whose answer the client decodes as if it were the
// meter's: `tally meters get .` printed an empty meter and `tally usage .`
// an empty usage table, both with success. The client must refuse such
// keys instead of asking another route.
func TestCLIMetersDotKeys(t *testing.T) {
	p := startPipeline(t)
	for _, args := range [][]string{{"meters", "get", "."}, {"meters", "get", ".."}, {"meters", "delete", "."}, {"usage", "."}, {"usage", ""}, {"meters", "get", ""}} {
		verb := metersVerb
		if args[0] == "usage" {
			verb = usageVerb
		}
		out, err := cliRun(t, p, "", verb, args[1:]...)
		if err == nil || !strings.Contains(err.Error(), "meter key") {
			t.Errorf("%q: err %v, want an error about the meter key; printed %q", args, err, out)
		}
	}
}

// review9a F8: `tally meters create -f` of an array stopped at the first
// meter that failed, silently leaving the ones after it uncreated; and a
// second run of the same file, once fixed, stops at once at the first
// meter (409, created by the first run), so the file can never be
// finished. Every meter is tried and the summary counts the failures.
func TestCLIMetersCreatePartial(t *testing.T) {
	p := startPipeline(t)
	file := writeFile(t, "meters.json", []byte(`[
	  {"key": "m1", "event_type": "e", "aggregation": "COUNT"},
	  {"key": "m2", "event_type": "e", "aggregation": "NOPE"},
	  {"key": "m3", "event_type": "e", "aggregation": "COUNT"}
	]`))
	out, err := cliRun(t, p, "", metersVerb, "create", "-f", file)
	if err == nil || !strings.Contains(err.Error(), "1 of 3 meters not created") {
		t.Errorf("create: err %v, want 1 of 3 meters not created\n%s", err, out)
	}
	if !strings.Contains(out, "created m1\n") || !strings.Contains(out, "created m3\n") || !strings.Contains(out, "meter 2 (m2): ") {
		t.Errorf("create printed:\n%s", out)
	}
	list, err := cliRun(t, p, "", metersVerb, "list")
	if err != nil || !strings.Contains(list, "\nm3 ") {
		t.Errorf("m3 was not created: %v\n%s", err, list)
	}
}

// review9a N8: group values come from event properties; one with a tab or
// a newline must not shift the table's columns or split its row.
func TestUsageTableControlCharacters(t *testing.T) {
	u := client.Usage{Data: []client.UsageRow{
		{GroupBy: map[string]string{"model": "a\tb"}, Value: decimal.RequireFromString("1.5")},
		{GroupBy: map[string]string{"model": "c\nd"}, Value: decimal.RequireFromString("-2")},
	}}
	var out bytes.Buffer
	if err := writeUsageTable(&out, u, []string{"model"}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[1], " 1.5") || !strings.HasSuffix(lines[2], " -2") {
		t.Errorf("table:\n%s", out.String())
	}
}

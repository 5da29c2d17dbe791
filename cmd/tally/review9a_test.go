package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/client"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

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

// stubIngest stands in for ingest: it rejects an event whose customer_id
// is empty, naming its index and id as ingest does, and accepts the rest.
func stubIngest(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var events []map[string]any
		if err := json.NewDecoder(zr).Decode(&events); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		res := client.SendResult{Rejected: []client.Rejection{}}
		for i, ev := range events {
			if ev["customer_id"] == "" {
				id, _ := ev["id"].(string)
				res.Rejected = append(res.Rejected, client.Rejection{Index: i, ID: id, Field: "customer_id", Error: "is required"})
				continue
			}
			res.Accepted++
		}
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(res)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// review9a F3: a rejected event that had no id in the input is reported
// by the UUID the client made up, which the user has never seen: the
// summary must say where in the input the event is (file and line).
func TestCLISendRejectionNamesInputLine(t *testing.T) {
	url := stubIngest(t)
	input := `{"id": "a", "type": "t", "customer_id": "c"}` + "\n\n" +
		`{"type": "t", "customer_id": ""}` + "\n" +
		`{"type": "t", "customer_id": "c"}` + "\n"
	var stdout, stderr bytes.Buffer
	err := sendCommand(context.Background(), []string{"-url=" + url, "-key=k", "-linger=1ms"}, strings.NewReader(input), &stdout, &stderr)
	if err == nil || !strings.Contains(stdout.String(), "accepted 2, rejected 1\n") {
		t.Fatalf("send: %v\n%s", err, stdout.String())
	}
	if !strings.Contains(stdout.String(), "stdin line 3") {
		t.Errorf("the rejection of the id-less event on line 3 does not say where it is:\n%s", stdout.String())
	}
}

// The line of each event, in NDJSON with blank lines, a pretty-printed
// array and gzip.
func TestReadEventsLines(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("\n\n{\"id\":\"a\"}\n{\"id\":\"b\"}"))
	_ = zw.Close()
	for _, c := range []struct {
		in   string
		want []int
	}{
		{"{\"id\":\"a\"}\n\n\n{\"id\":\"b\"}\n{\"id\":\"c\"}\n", []int{1, 4, 5}},
		{"\n\n[\n  {\"id\": \"a\",\n   \"x\": 1},\n  {\"id\": \"b\"}\n]\n", []int{4, 6}},
		{"{\n \"id\": \"a\"\n}\n{\n \"id\": \"b\"\n}", []int{1, 4}},
		{gz.String(), []int{3, 4}},
	} {
		var got []int
		if err := readEvents(strings.NewReader(c.in), func(_ json.RawMessage, line int) error {
			got = append(got, line)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("lines %v, want %v, of %q", got, c.want, c.in)
		}
	}
}

// review9a F5: when a request gets no answer in time, ingest may have
// recorded its events, but `tally send` reported them as "failed" (the
// README: "could not be sent") and never showed the ids it made up for
// events without one, so the only way to finish the job, sending the
// input again, counts those events twice. The summary must say that the
// events may be recorded and show the ids they were sent with.
func TestCLISendTimeoutShowsIDsSent(t *testing.T) {
	var mu sync.Mutex
	var recorded []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, _ := gzip.NewReader(r.Body)
		var events []client.Event
		_ = json.NewDecoder(zr).Decode(&events)
		mu.Lock()
		for _, ev := range events {
			recorded = append(recorded, ev.ID)
		}
		mu.Unlock()
		time.Sleep(300 * time.Millisecond) // recorded, but answered too late
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(client.SendResult{Accepted: len(events), Rejected: []client.Rejection{}})
	}))
	defer srv.Close()
	input := `{"id": "mine", "type": "t", "customer_id": "c"}` + "\n" + `{"type": "t", "customer_id": "c"}` + "\n"
	var stdout, stderr bytes.Buffer
	err := sendCommand(context.Background(), []string{"-url=" + srv.URL, "-key=k", "-timeout=100ms", "-retry-for=0", "-linger=1ms"},
		strings.NewReader(input), &stdout, &stderr)
	out := stdout.String()
	mu.Lock()
	defer mu.Unlock()
	if err == nil || len(recorded) != 2 {
		t.Fatalf("err %v, recorded %v\n%s", err, recorded, out)
	}
	if !strings.Contains(out, "may have recorded") {
		t.Errorf("the summary does not say that ingest may have recorded the events without answering:\n%s", out)
	}
	if !strings.Contains(out, fmt.Sprintf("%q (stdin line 2)", recorded[1])) {
		t.Errorf("the summary does not show the id %s the id-less event of line 2 was sent with:\n%s", recorded[1], out)
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

// review9a F7: a malformed event is named by its ordinal only ("stdin:
// event 3"), which is not its line once the input has blank lines or
// pretty-printed objects; the error must name the line it starts on.
func TestCLISendMalformedNamesLine(t *testing.T) {
	url := stubIngest(t)
	for _, c := range []struct{ in, want string }{
		{"{\"id\": \"a\", \"type\": \"t\", \"customer_id\": \"c\"}\n\n\n{\"id\": \"b\", \"type\": \"t\", \"customer_id\": \"c\"}\n\n{\"id\": \"c\", oops}\n", "stdin line 6"},
		{"[\n {\"id\": \"a\", \"type\": \"t\", \"customer_id\": \"c\"},\n\n 7\n]\n", "stdin line 4 (event 2)"},
		{"[\n {\"id\": \"a\", \"type\": \"t\", \"customer_id\": \"c\"},\n\n {\"id\": x}\n]\n", "stdin line 4"},
	} {
		var stdout, stderr bytes.Buffer
		err := sendCommand(context.Background(), []string{"-url=" + url, "-key=k", "-linger=1ms"}, strings.NewReader(c.in), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want it to name %q, of %q", err, c.want, c.in)
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

// endlessEvent is one event whose string property never ends (a runaway
// producer, `cat /dev/urandom | base64` into a field); it counts what
// was read.
type endlessEvent struct {
	head []byte
	read int64
}

func (e *endlessEvent) Read(p []byte) (int, error) {
	n := copy(p, e.head)
	e.head = e.head[n:]
	for i := n; i < len(p); i++ {
		p[i] = 'a'
	}
	e.read += int64(len(p))
	if e.read > 200<<20 {
		return len(p), io.EOF
	}
	return len(p), nil
}

// review9a F10: `tally send` held a whole event in memory however large
// (json.Decoder buffers a value, then AddJSON copies it twice), to fail
// it only at send time as a request over ingest's limits: a 200 MiB line
// took about a GiB. An event larger than any request ingest takes is an
// error as soon as it passes that size, naming its line.
func TestCLISendHugeEventBounded(t *testing.T) {
	url := stubIngest(t)
	in := &endlessEvent{head: []byte(`{"id": "a", "type": "t", "customer_id": "c"}` + "\n" + `{"id": "b", "type": "t", "customer_id": "c", "properties": {"blob": "`)}
	var stdout, stderr bytes.Buffer
	err := sendCommand(context.Background(), []string{"-url=" + url, "-key=k", "-linger=1ms"}, in, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "stdin line 2") {
		t.Errorf("err %v, want an error naming stdin line 2\n%s", err, stdout.String())
	}
	if in.read > 16<<20 {
		t.Errorf("read %d MiB of one event before giving up", in.read>>20)
	}
}

// review9a F11: a malformed event stops reading after the events before
// it were sent; the natural next step, fixing the line and sending the
// whole input again, counts the earlier events that had no id twice. The
// summary must say that the events before the bad one were sent.
func TestCLISendStopSaysWhatWasSent(t *testing.T) {
	url := stubIngest(t)
	input := `{"type": "t", "customer_id": "c"}` + "\n" + `{"type": "t", "customer_id": "c"}` + "\n" + `{"type": oops}` + "\n" + `{"type": "t", "customer_id": "c"}` + "\n"
	var stdout, stderr bytes.Buffer
	err := sendCommand(context.Background(), []string{"-url=" + url, "-key=k", "-linger=1ms"}, strings.NewReader(input), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "stdin line 3") {
		t.Fatalf("err %v", err)
	}
	if !strings.Contains(stdout.String(), "the 2 events before stdin line 3 were sent") {
		t.Errorf("the summary does not say that the events before the bad line were sent:\n%s", stdout.String())
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

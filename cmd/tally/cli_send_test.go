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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-oss/tally/client"
)

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

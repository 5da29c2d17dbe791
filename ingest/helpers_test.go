package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/kafkaclient"
	"github.com/tally-oss/tally/schemas"
)

// API keys of the two test organizations.
const (
	acmeKey   = "acme-key-0123456789"
	globexKey = "globex-key-0123456789"
)

func testKeys(t testing.TB) *httpapi.Keys {
	t.Helper()
	var keys httpapi.Keys
	if err := keys.AddSpec("acme:" + acmeKey + ",globex:" + globexKey); err != nil {
		t.Fatal(err)
	}
	return &keys
}

// testConfig returns the flag defaults, listening on a free port.
func testConfig() Config {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.ContinueOnError))
	cfg.ListenAddr = "127.0.0.1:0"
	return cfg
}

// kafkaConfig returns the kafka.* defaults pointed at brokers and topic.
func kafkaConfig(brokers []string, topic string) *kafkaclient.Config {
	var kc kafkaclient.Config
	kc.RegisterFlags(flag.NewFlagSet("test", flag.ContinueOnError))
	kc.Brokers = brokers
	kc.Topic = topic
	kc.DeadLetterTopic = topic + "-dead-letter"
	return &kc
}

// recordingPublisher stands in for Kafka only in the handler's unit tests
// (decoding, validation, status codes); the integration tests use the
// real in-process broker.
type recordingPublisher struct {
	mu    sync.Mutex
	calls [][]kafka.Message
	err   error
}

func (p *recordingPublisher) Publish(_ context.Context, msgs []kafka.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, msgs)
	return p.err
}

func (p *recordingPublisher) published() []kafka.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	var all []kafka.Message
	for _, c := range p.calls {
		all = append(all, c...)
	}
	return all
}

func newTestService(t testing.TB, cfg Config, deps Deps) *Service {
	t.Helper()
	if deps.Keys == nil {
		deps.Keys = testKeys(t)
	}
	if deps.Registerer == nil {
		reg := prometheus.NewRegistry()
		deps.Registerer, deps.Gatherer = reg, reg
	}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// request describes one POST to the events API.
type request struct {
	body            []byte
	contentType     string
	contentEncoding string
	auth            string // Authorization header; "-" sends none
}

func (r request) build(target string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(r.body))
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.contentEncoding != "" {
		req.Header.Set("Content-Encoding", r.contentEncoding)
	}
	switch r.auth {
	case "":
		req.Header.Set("Authorization", "Bearer "+acmeKey)
	case "-":
	default:
		req.Header.Set("Authorization", r.auth)
	}
	return req
}

// serve posts r through h and returns the status and body.
func serve(h http.Handler, r request) (int, []byte) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r.build(EventsRoute))
	return rec.Code, rec.Body.Bytes()
}

// post sends r to a running service.
func post(t testing.TB, base string, r request) (int, []byte) {
	t.Helper()
	code, body, err := tryPost(base, r)
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

// tryPost is post for goroutines other than the test's.
func tryPost(base string, r request) (int, []byte, error) {
	req := r.build(base + EventsRoute)
	req.RequestURI = ""
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// errorBody is httpapi.Error with the details of ingest's responses.
type errorBody struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Details json.RawMessage `json:"details"`
}

func lines(s ...string) []byte { return []byte(strings.Join(s, "\n")) }

func checkRejections(t *testing.T, got, want []Rejection) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("rejected %+v, want %+v", got, want)
	}
	for i := range want {
		g := got[i]
		if g.Index != want[i].Index || g.Line != want[i].Line || g.ID != want[i].ID || g.Field != want[i].Field || g.Error == "" {
			t.Errorf("rejected[%d] = %+v, want %+v with an error message", i, g, want[i])
		}
	}
}

// checkRecords decodes published messages and checks what every record
// must satisfy: key, header, one arrival time for the request.
func checkRecords(t *testing.T, msgs []kafka.Message, before time.Time) []schemas.Record {
	t.Helper()
	var recs []schemas.Record
	for i, m := range msgs {
		rec, err := schemas.DecodeRecord(m.Value)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !bytes.Equal(m.Key, schemas.RecordKey(rec.OrgID, rec.Event.CustomerID)) {
			t.Errorf("record %d key %q", i, m.Key)
		}
		if len(m.Headers) != 1 || m.Headers[0].Key != "content-type" || string(m.Headers[0].Value) != schemas.RecordContentType {
			t.Errorf("record %d headers %v", i, m.Headers)
		}
		if rec.IngestedAt.Before(before.Truncate(time.Microsecond)) || (i > 0 && !rec.IngestedAt.Equal(recs[0].IngestedAt)) {
			t.Errorf("record %d ingested at %s (first %v)", i, rec.IngestedAt, recs)
		}
		recs = append(recs, rec)
	}
	return recs
}

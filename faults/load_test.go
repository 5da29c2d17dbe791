package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// event is one generated usage event. Properties are kept as JSON
// literals so that poison values (a string where a number belongs, a
// million digits) are sent exactly as written.
type event struct {
	org      string
	id       string
	customer string
	at       time.Time
	tokens   string // JSON literal or "" (absent)
	latency  string
	session  string
	model    string
	status   string // JSON string value, "ok" or "error"
	pad      int    // length of a padding property, for large events
	extra    string // more properties, written as is: `"name":value`
}

func (e *event) identity() string { return e.org + "\x00" + e.customer + "\x00" + e.id }

func (e *event) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, e.id)
	b = append(b, `,"type":"`+eventType+`","customer_id":`...)
	b = strconv.AppendQuote(b, e.customer)
	b = append(b, `,"time":"`...)
	b = e.at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","properties":{"status":`...)
	b = strconv.AppendQuote(b, e.status)
	for _, p := range [][2]string{{"tokens", e.tokens}, {"latency_ms", e.latency}, {"session", e.session}, {"model", e.model}} {
		if p[1] != "" {
			b = append(b, `,"`+p[0]+`":`...)
			b = append(b, p[1]...)
		}
	}
	if e.extra != "" {
		b = append(b, ',')
		b = append(b, e.extra...)
	}
	if e.pad > 0 {
		b = append(b, `,"pad":"`...)
		b = append(b, strings.Repeat("x", e.pad)...)
		b = append(b, '"')
	}
	return append(b, `}}`...)
}

func encodeBatch(events []*event) []byte {
	b := []byte{'['}
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = e.appendJSON(b)
	}
	return append(b, ']')
}

var models = []string{`"gpt-4o"`, `"gpt-4o-mini"`, `"claude"`, `"llama"`}

// loadSpec is the shape of one fault's load.
type loadSpec struct {
	clients   int     // concurrent senders
	batchMax  int     // events per request: 1..batchMax
	rate      float64 // events per second per organization, all clients together; 0: unlimited
	customers int
	poison    float64 // share of batches carrying one unmeterable event
	storm     bool    // each batch sent 2-3 times at once, then some ids re-sent changed
	maxEvents int     // stop generating after this many events per organization (0: until stop)
}

// load runs senders until stop and records what ingest acknowledged.
type load struct {
	st   *stack
	spec loadSpec
	rec  *recorder
	seq  atomic.Int64

	cancelGen context.CancelFunc // stops generating new batches
	hard      context.Context    // bounds retries of batches already generated
	wg        sync.WaitGroup
	paceMu    sync.Mutex
	paceNext  time.Time
}

// recorder holds the first acknowledged version of every identity.
type recorder struct {
	mu        sync.Mutex
	acked     map[string]*event
	ackedN    int // acknowledged events, re-sends included
	requests  map[string]int
	rejected  int // events a 2xx named as rejected
	failed    int // batches never acknowledged (hard deadline)
	lastAck   time.Time
	firstFail string
	first503  string // the body of the first 503, for the report
}

func newRecorder() *recorder {
	return &recorder{acked: map[string]*event{}, requests: map[string]int{}}
}

func startLoad(st *stack, spec loadSpec, hardTimeout time.Duration) *load {
	gen, cancel := context.WithCancel(context.Background())
	hard, hardCancel := context.WithTimeout(context.Background(), hardTimeout)
	st.t.Cleanup(hardCancel)
	l := &load{st: st, spec: spec, rec: newRecorder(), cancelGen: cancel, hard: hard}
	for c := range spec.clients {
		l.wg.Go(func() { l.client(gen, rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))) })
	}
	return l
}

// stop ends generation and waits until every generated batch is
// acknowledged (or the hard deadline passed).
func (l *load) stop() {
	l.cancelGen()
	l.wg.Wait()
}

// acked returns the number of distinct acknowledged identities.
func (l *load) acked() int {
	l.rec.mu.Lock()
	defer l.rec.mu.Unlock()
	return len(l.rec.acked)
}

// waitAcked waits until at least n identities are acknowledged.
func (l *load) waitAcked(n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for l.acked() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

func (l *load) client(gen context.Context, rng *rand.Rand) {
	for gen.Err() == nil {
		n := 1 + rng.IntN(l.spec.batchMax)
		first := l.seq.Add(int64(n)) - int64(n)
		if l.spec.maxEvents > 0 && first >= int64(l.spec.maxEvents) {
			return
		}
		if !l.pace(gen, n) {
			return
		}
		now := time.Now()
		// The same ids and customers go to both organizations with
		// different values: identities differ by organization.
		for _, o := range orgs {
			batch := make([]*event, n)
			for i := range batch {
				batch[i] = newEvent(rng, o.id, first+int64(i), l.spec.customers, now)
			}
			if l.spec.poison > 0 && rng.Float64() < l.spec.poison {
				poisonEvent(rng, batch[rng.IntN(n)])
			}
			if l.spec.storm {
				l.storm(rng, o, batch)
				continue
			}
			l.send(o, batch)
		}
	}
}

// pace spaces batches so that events leave at spec.rate per organization.
func (l *load) pace(ctx context.Context, n int) bool {
	if l.spec.rate <= 0 {
		return ctx.Err() == nil
	}
	l.paceMu.Lock()
	now := time.Now()
	if l.paceNext.Before(now) {
		l.paceNext = now
	}
	at := l.paceNext
	l.paceNext = l.paceNext.Add(time.Duration(float64(n) / l.spec.rate * float64(time.Second)))
	l.paceMu.Unlock()
	select {
	case <-time.After(time.Until(at)):
		return true
	case <-ctx.Done():
		return false
	}
}

func newEvent(rng *rand.Rand, orgID string, seq int64, customers int, now time.Time) *event {
	status := "ok"
	if rng.IntN(5) == 0 {
		status = "error"
	}
	return &event{
		org: orgID, id: "ev-" + strconv.FormatInt(seq, 10),
		customer: "cust-" + strconv.Itoa(rng.IntN(customers)),
		// Spread over three days (windows) and kept well inside ingest's
		// 35-day age limit and 5-minute future limit.
		at:      now.Add(-time.Duration(rng.Int64N(int64(72 * time.Hour)))),
		tokens:  strconv.Itoa(rng.IntN(100000)) + "." + strconv.Itoa(rng.IntN(1000)),
		latency: strconv.Itoa(1 + rng.IntN(5000)),
		session: strconv.Quote("s-" + strconv.Itoa(rng.IntN(40))),
		model:   models[rng.IntN(len(models))],
		status:  status,
	}
}

// poisonKinds are values that pass ingest but that some meter cannot
// meter; each must be dead-lettered for that meter while the others count
// the event.
var poisonKinds = []func(e *event){
	func(e *event) { e.tokens, e.status = `"lots"`, "ok" },                         // SUM: not a number
	func(e *event) { e.tokens, e.status = "1"+strings.Repeat("0", 30), "ok" },      // SUM: out of range
	func(e *event) { e.tokens, e.status = "0.1234567890123", "ok" },                // SUM: too precise
	func(e *event) { e.tokens, e.status = `{"n": 1}`, "ok" },                       // SUM: an object
	func(e *event) { e.tokens, e.status = "", "ok" },                               // SUM: missing
	func(e *event) { e.latency = `"fast"` },                                        // MAX: not a number
	func(e *event) { e.session = `["a"]` },                                         // UNIQUE_COUNT: an array
	func(e *event) { e.model = `{"m": "x"}` },                                      // every meter: group not scalar
	func(e *event) { e.tokens, e.status = "-"+strings.Repeat("9", 27)+".5", "ok" }, // SUM: out of range, negative
	func(e *event) { e.latency = "1" + strings.Repeat("0", 26) },                   // MAX: exactly 10^26
	func(e *event) { e.tokens, e.status = `"12.5"`, "ok" },                         // not poison: a string holding a number counts
	func(e *event) { e.session = "17.50" },                                         // not poison: numbers are distinct values
}

func poisonEvent(rng *rand.Rand, e *event) { poisonKinds[rng.IntN(len(poisonKinds))](e) }

// storm sends the batch from two or three clients at once, each retrying
// until acknowledged; then, for about a third of the batches, re-sends
// some of the ids with changed payloads, which must change nothing: the
// first version is already acknowledged, so it is the one that counts.
func (l *load) storm(rng *rand.Rand, o org, batch []*event) {
	var wg sync.WaitGroup
	for range 2 + rng.IntN(2) {
		wg.Go(func() { l.send(o, batch) })
	}
	wg.Wait()
	if rng.IntN(3) != 0 {
		return
	}
	var changed []*event
	for _, e := range batch {
		if rng.IntN(2) == 0 {
			continue
		}
		c := *e
		c.tokens = strconv.Itoa(1 + rng.IntN(1000))
		c.latency = strconv.Itoa(10000 + rng.IntN(1000)) // above any first version's
		c.model = models[rng.IntN(len(models))]
		c.session = strconv.Quote("changed-" + strconv.Itoa(rng.IntN(5)))
		c.at = c.at.Add(-time.Duration(rng.IntN(48)) * time.Hour)
		changed = append(changed, &c)
	}
	if len(changed) > 0 {
		l.send(o, changed)
	}
}

// send posts one batch until it is acknowledged (each attempt to the next
// ingest process when the stack runs several), re-sending it unchanged
// after any answer but 2xx or 4xx: a 503 or a broken connection may or may
// not have recorded the events, and the same ids re-sent unchanged are
// counted once. It records the acknowledged events.
func (l *load) send(o org, batch []*event) {
	body := encodeBatch(batch)
	backoff := 50 * time.Millisecond
	for {
		code, resp, retryAfter := l.post(l.st.ingestURL(), o.key, body)
		l.rec.count(code, resp)
		switch {
		case code >= 200 && code < 300:
			l.rec.ack(batch, resp)
			return
		case code >= 400 && code < 500 && code != http.StatusTooManyRequests && code != http.StatusRequestTimeout:
			l.rec.reject(batch, code, resp)
			return
		}
		wait := max(backoff, min(retryAfter, 5*time.Second))
		backoff = min(2*backoff, time.Second)
		select {
		case <-time.After(wait):
		case <-l.hard.Done():
			l.rec.fail(len(batch), fmt.Sprintf("batch of %d never acknowledged; last answer %d %s", len(batch), code, bytes.TrimSpace(resp)))
			return
		}
	}
}

func (l *load) post(url, key string, body []byte) (code int, resp []byte, retryAfter time.Duration) {
	req, err := http.NewRequestWithContext(l.hard, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, []byte(err.Error()), 0
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	r, err := l.st.client.Do(req)
	if err != nil {
		return 0, []byte(err.Error()), 0
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return 0, []byte(err.Error()), 0
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err == nil {
		retryAfter = time.Duration(s) * time.Second
	}
	return r.StatusCode, b, retryAfter
}

func (r *recorder) count(code int, body []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if code == http.StatusServiceUnavailable && r.first503 == "" {
		r.first503 = truncate(string(bytes.TrimSpace(body)), 400)
	}
	key := strconv.Itoa(code)
	if code == 0 {
		key = "transport"
	}
	r.requests[key]++
}

// ack records the events of a 2xx answer except those it names rejected.
func (r *recorder) ack(batch []*event, body []byte) {
	var answer struct {
		Rejected []struct {
			Index int `json:"index"`
		} `json:"rejected"`
	}
	_ = json.Unmarshal(body, &answer)
	rejected := map[int]bool{}
	for _, rej := range answer.Rejected {
		rejected[rej.Index] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejected += len(rejected)
	r.lastAck = time.Now()
	for i, e := range batch {
		if rejected[i] {
			continue
		}
		r.ackedN++
		if _, seen := r.acked[e.identity()]; !seen {
			r.acked[e.identity()] = e
		}
	}
}

func (r *recorder) reject(batch []*event, code int, body []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejected += len(batch)
	if r.firstFail == "" {
		r.firstFail = fmt.Sprintf("batch of %d rejected: %d %s", len(batch), code, truncate(string(body), 300))
	}
}

func (r *recorder) fail(n int, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed += n
	if r.firstFail == "" {
		r.firstFail = why
	}
}

// events returns the acknowledged first versions.
func (r *recorder) events() []*event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*event, 0, len(r.acked))
	for _, e := range r.acked {
		out = append(out, e)
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

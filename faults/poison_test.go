package faults

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// largest is the largest event ingest accepted in a binary search over
// the length of a padding property.
type largest struct{ pad, size int }

var bigSeq int

// bigEvent is a valid event of org-a with a padding property of pad bytes;
// tokens, when set, replaces its value.
func (sc *scenario) bigEvent(pad int, tokens, status string) *event {
	bigSeq++
	e := &event{
		org: orgs[0].id, id: "big-" + strconv.Itoa(bigSeq), customer: "cust-big",
		at: time.Now().Add(-time.Minute), tokens: "1.5", latency: "7", session: `"s-big"`,
		model: `"gpt-4o"`, status: status, pad: pad,
	}
	if tokens != "" {
		e.tokens = tokens
	}
	return e
}

// largestAccepted finds, by binary search, the longest padding with which
// ingest still accepts a single event. Accepted probes are recorded like
// any other acknowledged event.
func (sc *scenario) largestAccepted() largest {
	sc.t.Helper()
	lo, hi := 0, 8<<20 // accepted, refused
	for hi-lo > 64 {
		mid := (lo + hi) / 2
		if sc.probe(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	e := sc.bigEvent(lo, "", "ok")
	return largest{pad: lo, size: len(e.appendJSON(nil))}
}

// probe sends one event with a padding of pad bytes and reports whether it
// was accepted; it re-sends on answers that are neither 2xx nor 4xx.
func (sc *scenario) probe(pad int) bool {
	e := sc.bigEvent(pad, "", "ok")
	batch := []*event{e}
	body := encodeBatch(batch)
	for attempt := 0; attempt < 100; attempt++ {
		code, resp, _ := sc.l.post("http://"+sc.s.ingest.addr+"/api/v1/events", orgs[0].key, body)
		sc.l.rec.count(code)
		switch {
		case code == http.StatusAccepted:
			var answer struct {
				Accepted int `json:"accepted"`
			}
			_ = json.Unmarshal(resp, &answer)
			sc.l.rec.ack(batch, resp)
			return answer.Accepted == 1
		case code >= 400 && code < 500 && code != http.StatusTooManyRequests:
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
	sc.t.Fatalf("probe of %d bytes never answered 2xx or 4xx", pad)
	return false
}

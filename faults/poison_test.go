package faults

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

var bigSeq int

// digits is a number literal of n digits.
func digits(n int) string { return "9" + strings.Repeat("0", n-1) }

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

// numberEvent is an event of org-a whose only properties are status "ok"
// and the number literal: in "tokens", which the SUM meter reads, or, with
// probe set, in "tokenz", which no meter reads but which makes an event of
// exactly the same size.
func numberEvent(number string, probe bool) *event {
	bigSeq++
	e := &event{org: orgs[0].id, id: "num-" + strconv.Itoa(bigSeq), customer: "cust-num",
		at: time.Now().Add(-time.Minute), status: "ok"}
	if probe {
		e.extra = `"tokenz":` + number
	} else {
		e.tokens = number
	}
	return e
}

// largest finds, by binary search over [lo, hi), the largest n for which
// ingest accepts the event make(n) alone.
func (sc *scenario) largest(lo, hi int, make func(n int) *event) int {
	sc.t.Helper()
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if sc.probe(make(mid)) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// probe sends one event and reports whether it was accepted; it re-sends
// on answers that are neither 2xx nor 4xx. Accepted probes are recorded
// like any other acknowledged event.
func (sc *scenario) probe(e *event) bool {
	ok, _ := sc.probeWhy(e)
	return ok
}

// probeWhy is probe that also returns the answer's body.
func (sc *scenario) probeWhy(e *event) (bool, string) {
	batch := []*event{e}
	body := encodeBatch(batch)
	for range 100 {
		code, resp, _ := sc.l.post("http://"+sc.s.ingest.addr+"/api/v1/events", orgs[0].key, body)
		sc.l.rec.count(code, resp)
		switch {
		case code == http.StatusAccepted:
			var answer struct {
				Accepted int `json:"accepted"`
			}
			_ = json.Unmarshal(resp, &answer)
			sc.l.rec.ack(batch, resp)
			return answer.Accepted == 1, string(resp)
		case code >= 400 && code < 500 && code != http.StatusTooManyRequests:
			return false, string(resp)
		}
		time.Sleep(200 * time.Millisecond)
	}
	sc.t.Fatalf("probe of %d bytes never answered 2xx or 4xx", len(body))
	return false, ""
}

package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// The oracle computes usage from the acknowledged events alone, with its
// own reading of the documented meter rules (README "Meters"), and
// compares it cell by cell with the query API's answer.

// cell is one (organization, meter, customer, DAY window in UTC, group).
type cell struct {
	org, meter, customer string
	day                  time.Time
	model                string
}

// maxValue is the documented range of values: up to 26 integer digits.
var maxValue = decimal.New(1, 26)

// numberOf reads a meter value: a JSON number, or a string holding one,
// within range and with at most 12 decimals. Long literals are judged by
// length first, so a million digits cost nothing.
func numberOf(literal string) (decimal.Decimal, bool) {
	text := literal
	if strings.HasPrefix(text, `"`) {
		s, err := strconv.Unquote(text)
		if err != nil {
			return decimal.Decimal{}, false
		}
		text = s
	}
	if text == "" || len(text) > 60 || strings.ContainsAny(text, "{[tfn") {
		return decimal.Decimal{}, false
	}
	d, err := decimal.NewFromString(text)
	if err != nil || d.Abs().GreaterThanOrEqual(maxValue) || !d.Round(12).Equal(d) {
		return decimal.Decimal{}, false
	}
	return d, true
}

// scalarOf reads a group or distinct value: strings as they are, numbers
// in canonical decimal form; objects and arrays are not scalars.
func scalarOf(literal string) (string, bool) {
	switch {
	case literal == "":
		return "", true // absent: the empty group
	case strings.HasPrefix(literal, `"`):
		s, err := strconv.Unquote(literal)
		return s, err == nil
	case strings.HasPrefix(literal, "{"), strings.HasPrefix(literal, "["):
		return "", false
	case literal == "true" || literal == "false":
		return literal, true
	}
	d, err := decimal.NewFromString(literal)
	if err != nil {
		return literal, true
	}
	return d.String(), true
}

// aggState folds one cell.
type aggState struct {
	sum      decimal.Decimal
	max      *decimal.Decimal
	distinct map[string]bool
}

// expectation is the oracle's answer.
type expectation struct {
	values       map[cell]decimal.Decimal
	deadLetters  int // (event, meter) pairs that must be dead-lettered
	countable    int // events the COUNT meter must count
	earliest     time.Time
	acknowledged int
}

func expect(events []*event) expectation {
	states := map[cell]*aggState{}
	ex := expectation{values: map[cell]decimal.Decimal{}, acknowledged: len(events), earliest: time.Now()}
	state := func(c cell) *aggState {
		s := states[c]
		if s == nil {
			s = &aggState{distinct: map[string]bool{}}
			states[c] = s
		}
		return s
	}
	for _, e := range events {
		if e.at.Before(ex.earliest) {
			ex.earliest = e.at
		}
		model, modelOK := scalarOf(e.model)
		day := e.at.UTC().Truncate(24 * time.Hour)
		for _, m := range meterDefs {
			if m.agg == "SUM" && e.status != "ok" {
				continue // the filter excludes it
			}
			if !modelOK {
				ex.deadLetters++
				continue
			}
			c := cell{e.org, m.key, e.customer, day, model}
			switch m.agg {
			case "COUNT":
				s := state(c)
				s.sum = s.sum.Add(decimal.NewFromInt(1))
				ex.countable++
			case "SUM":
				v, ok := numberOf(e.tokens)
				if !ok {
					ex.deadLetters++
					continue
				}
				s := state(c)
				s.sum = s.sum.Add(v)
			case "MAX":
				v, ok := numberOf(e.latency)
				if !ok {
					ex.deadLetters++
					continue
				}
				s := state(c)
				if s.max == nil || v.GreaterThan(*s.max) {
					s.max = &v
				}
			case "UNIQUE_COUNT":
				v, ok := scalarOf(e.session)
				if !ok || e.session == "" {
					ex.deadLetters++
					continue
				}
				state(c).distinct[v] = true
			}
		}
	}
	for c, s := range states {
		switch meterAgg(c.meter) {
		case "SUM", "COUNT":
			ex.values[c] = s.sum
		case "MAX":
			ex.values[c] = *s.max
		case "UNIQUE_COUNT":
			ex.values[c] = decimal.NewFromInt(int64(len(s.distinct)))
		}
	}
	return ex
}

func meterAgg(key string) string {
	for _, m := range meterDefs {
		if m.key == key {
			return m.agg
		}
	}
	panic("unknown meter " + key)
}

// comparison is the outcome of one comparison with the query API.
type comparison struct {
	equal, wrong     int // cells
	lost, duplicates int // events, from the COUNT meter's cells
	counted          int // events the COUNT meter counts
	examples         []string
	err              error
}

func (c comparison) ok() bool { return c.err == nil && c.wrong == 0 }

func (c comparison) String() string {
	if c.err != nil {
		return "query failed: " + c.err.Error()
	}
	return fmt.Sprintf("%d cells equal, %d wrong (%d events lost, %d duplicated, %d counted) %s",
		c.equal, c.wrong, c.lost, c.duplicates, c.counted, strings.Join(c.examples, "; "))
}

// compare queries every organization's meters through every query
// process of the stack and compares them cell by cell with ex: it returns
// the first comparison that differs, naming its query process when there
// are several, or the last one.
func (s *stack) compare(ex expectation) comparison {
	var cmp comparison
	for _, q := range s.queries {
		cmp = s.compareVia(q, ex)
		if !cmp.ok() {
			if len(s.queries) > 1 {
				cmp.examples = append([]string{"through " + q.name + ":"}, cmp.examples...)
			}
			return cmp
		}
	}
	return cmp
}

// compareVia compares the answers of query process q with ex.
func (s *stack) compareVia(q *proc, ex expectation) comparison {
	var cmp comparison
	got := map[cell]decimal.Decimal{}
	from := ex.earliest.UTC().Truncate(24 * time.Hour)
	to := time.Now().UTC().Truncate(24 * time.Hour).Add(48 * time.Hour)
	for _, o := range orgs {
		for _, m := range meterDefs {
			rows, err := s.usage(q, o, m.key, from, to)
			if err != nil {
				cmp.err = err
				return cmp
			}
			for c, v := range rows {
				got[c] = v
			}
		}
	}
	keys := map[cell]bool{}
	for c := range ex.values {
		keys[c] = true
	}
	for c := range got {
		keys[c] = true
	}
	for c := range keys {
		want, g := ex.values[c], got[c]
		if c.meter == "f_calls" {
			cmp.counted += int(g.IntPart())
		}
		if want.Equal(g) {
			cmp.equal++
			continue
		}
		cmp.wrong++
		if c.meter == "f_calls" {
			if d := int(want.Sub(g).IntPart()); d > 0 {
				cmp.lost += d
			} else {
				cmp.duplicates -= d
			}
		}
		if len(cmp.examples) < 5 {
			cmp.examples = append(cmp.examples, fmt.Sprintf("%s/%s/%s/%s/%s: got %s, want %s",
				c.org, c.meter, c.customer, c.day.Format("2006-01-02"), c.model, g, want))
		}
	}
	sort.Strings(cmp.examples)
	return cmp
}

// usage asks query process qp for one meter by DAY, customer and model.
// With customers, it asks for those customers only (the query service
// then reads readings_by_customer instead of readings_by_day).
func (s *stack) usage(qp *proc, o org, meter string, from, to time.Time, customers ...string) (map[cell]decimal.Decimal, error) {
	q := url.Values{}
	for _, c := range customers {
		q.Add("customer_id", c)
	}
	q.Set("from", from.Format(time.RFC3339))
	q.Set("to", to.Format(time.RFC3339))
	q.Set("window_size", "DAY")
	q.Add("group_by", "customer_id")
	q.Add("group_by", "model")
	code, body := s.do(http.MethodGet, "http://"+qp.addr+"/api/v1/meters/"+meter+"/query?"+q.Encode(), o.key, nil)
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s: %s %s: %d %s", qp.name, o.id, meter, code, truncate(string(body), 300))
	}
	var resp struct {
		Data []struct {
			WindowStart time.Time         `json:"window_start"`
			CustomerID  string            `json:"customer_id"`
			GroupBy     map[string]string `json:"group_by"`
			Value       json.Number       `json:"value"`
		} `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&resp); err != nil {
		return nil, fmt.Errorf("%s %s: %w", o.id, meter, err)
	}
	out := map[cell]decimal.Decimal{}
	for _, r := range resp.Data {
		v, err := decimal.NewFromString(r.Value.String())
		if err != nil {
			return nil, fmt.Errorf("%s %s: value %q: %w", o.id, meter, r.Value, err)
		}
		c := cell{o.id, meter, r.CustomerID, r.WindowStart.UTC(), r.GroupBy["model"]}
		if _, dup := out[c]; dup {
			return nil, fmt.Errorf("%s %s: two rows for %v", o.id, meter, c)
		}
		out[c] = v
	}
	return out, nil
}

// converge polls the query API until it equals ex or timeout passes, and
// returns the last comparison and when it became equal.
func (s *stack) converge(ex expectation, timeout time.Duration) (comparison, time.Time) {
	deadline := time.Now().Add(timeout)
	for {
		cmp := s.compare(ex)
		if cmp.ok() {
			return cmp, time.Now()
		}
		if time.Now().After(deadline) {
			return cmp, time.Time{}
		}
		time.Sleep(500 * time.Millisecond)
	}
}

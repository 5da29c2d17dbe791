package query

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tally-oss/tally/schemas"
)

// event is what one test event contributes, before a meter turns it into
// a reading.
type event struct {
	id, customer, model string
	time                string
	value, user         string
}

// readingsOf turns events into the readings the aggregator would write for
// meter m of org: 1 for COUNT, the user as the distinct value for
// UNIQUE_COUNT, the value otherwise.
func readingsOf(t *testing.T, org string, m schemas.Meter, events []event) []reading {
	var out []reading
	for _, ev := range events {
		r := reading{org: org, meter: m.Key, revision: m.Revision, customer: ev.customer, eventID: ev.id,
			time: at(t, ev.time), value: ev.value, groups: map[string]string{"model": ev.model}}
		switch m.Aggregation {
		case schemas.AggCount:
			r.value = "1"
		case schemas.AggUniqueCount:
			r.value, r.distinct = "", ev.user
		}
		out = append(out, r)
	}
	return out
}

// TestAggregations runs every aggregation over the same events, grouped
// and filtered, with every reading written twice (a retried insert).
func TestAggregations(t *testing.T) {
	e := newEnv(t)
	events := []event{
		{"e1", "c1", "a", "2024-03-05T10:00:00.1Z", "1.5", "u1"},
		{"e2", "c1", "a", "2024-03-05T10:00:00.2Z", "2.25", "u2"},
		{"e3", "c1", "b", "2024-03-05T11:00:00Z", "10", "u1"},
		{"e4", "c2", "a", "2024-03-05T12:00:00Z", "0.000000000001", "u1"},
		{"e5", "c2", "b", "2024-03-05T13:00:00Z", "-3", "u3"},
		// Same event time as e5: LATEST breaks the tie by event id.
		{"e6", "c2", "b", "2024-03-05T13:00:00Z", "7", "u3"},
	}
	tests := []struct {
		agg                 schemas.Aggregation
		byModel             []string // a, then b
		modelAByCustomer    []string // c1, then c2
		customerC2WholeSpan string
	}{
		{schemas.AggSum, []string{"3.750000000001", "14"}, []string{"3.75", "0.000000000001"}, "4.000000000001"},
		{schemas.AggCount, []string{"3", "3"}, []string{"2", "1"}, "3"},
		{schemas.AggMax, []string{"2.25", "10"}, []string{"2.25", "0.000000000001"}, "7"},
		{schemas.AggMin, []string{"0.000000000001", "-3"}, []string{"1.5", "0.000000000001"}, "-3"},
		// 3.750000000001 / 3 and 14 / 3, rounded to 12 places.
		{schemas.AggAvg, []string{"1.25", "4.666666666667"}, []string{"1.875", "0.000000000001"}, "1.333333333334"},
		{schemas.AggUniqueCount, []string{"2", "2"}, []string{"2", "1"}, "2"},
		{schemas.AggLatest, []string{"0.000000000001", "7"}, []string{"2.25", "0.000000000001"}, "7"},
	}
	const span = "from=2024-03-05T00:00:00Z&to=2024-03-06T00:00:00Z"
	for _, tt := range tests {
		t.Run(string(tt.agg), func(t *testing.T) {
			key := "m-" + strings.ToLower(string(tt.agg))
			e := e.sub(t)
			def := fmt.Sprintf(`{"key": %q, "event_type": "llm", "aggregation": %q, "value_property": "$.v", "group_by": {"model": "$.model"}}`, key, tt.agg)
			if tt.agg == schemas.AggCount {
				def = fmt.Sprintf(`{"key": %q, "event_type": "llm", "aggregation": "COUNT", "group_by": {"model": "$.model"}}`, key)
			}
			m := e.createMeter(keyAcme, def)
			rows := readingsOf(t, "acme", m, events)
			e.insert(rows...)
			e.insert(rows...) // the same rows again: FINAL must fold them

			u := e.query(keyAcme, key, span+"&group_by=model")
			wantLines(t, "by model", u.lines("model"),
				"2024-03-05T00:00:00Z|a|"+tt.byModel[0], "2024-03-05T00:00:00Z|b|"+tt.byModel[1])

			u = e.query(keyAcme, key, span+"&filter[model]=a&group_by=customer_id")
			wantLines(t, "model a by customer", u.lines("customer_id"),
				"2024-03-05T00:00:00Z|c1|"+tt.modelAByCustomer[0], "2024-03-05T00:00:00Z|c2|"+tt.modelAByCustomer[1])
			for _, d := range u.Data {
				if d.CustomerID == nil || *d.CustomerID != d.GroupBy["customer_id"] {
					t.Errorf("customer_id field %v, group_by %v", d.CustomerID, d.GroupBy)
				}
			}

			u = e.query(keyAcme, key, span+"&customer_id=c2")
			wantLines(t, "customer c2", u.lines(), "2024-03-05T00:00:00Z|"+tt.customerC2WholeSpan)
			if d := u.Data[0]; d.CustomerID != nil || len(d.GroupBy) != 0 || d.WindowEnd != "2024-03-06T00:00:00Z" {
				t.Errorf("ungrouped row %+v", d)
			}
		})
	}
}

// TestExactAcrossWindows: AVG, UNIQUE_COUNT and LATEST are computed from
// the events of each window, so the whole range is never an average of
// averages, a sum of distinct counts, or the last window's latest.
func TestExactAcrossWindows(t *testing.T) {
	e := newEnv(t)
	events := []event{
		{"e1", "c1", "a", "2024-03-05T10:00:00Z", "1", "u1"},
		{"e2", "c1", "a", "2024-03-05T11:00:00Z", "2", "u2"},
		{"e3", "c1", "a", "2024-03-06T01:00:00Z", "6", "u1"},
		{"e4", "c2", "a", "2024-03-05T23:00:00Z", "9", "u9"},
	}
	// Inserted out of time order: LATEST goes by event time, not arrival.
	late := event{"e0", "c1", "a", "2024-03-05T09:00:00Z", "100", "u1"}
	const days = "from=2024-03-05T00:00:00Z&to=2024-03-07T00:00:00Z"
	tests := []struct {
		agg        schemas.Aggregation
		perDay     []string // c1 day 1, c2 day 1, c1 day 2
		wholeRange []string // c1, c2
	}{
		{schemas.AggAvg, []string{"34.333333333333", "9", "6"}, []string{"27.25", "9"}},
		{schemas.AggUniqueCount, []string{"2", "1", "1"}, []string{"2", "1"}},
		{schemas.AggLatest, []string{"2", "9", "6"}, []string{"6", "9"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.agg), func(t *testing.T) {
			key := "m-" + strings.ToLower(string(tt.agg))
			e := e.sub(t)
			m := e.createMeter(keyAcme, fmt.Sprintf(`{"key": %q, "event_type": "llm", "aggregation": %q, "value_property": "$.v", "group_by": {"model": "$.model"}}`, key, tt.agg))
			e.insert(readingsOf(t, "acme", m, events)...)
			e.insert(readingsOf(t, "acme", m, []event{late})...)

			u := e.query(keyAcme, key, days+"&window_size=DAY&group_by=customer_id")
			wantLines(t, "per day", u.lines("customer_id"),
				"2024-03-05T00:00:00Z|c1|"+tt.perDay[0], "2024-03-05T00:00:00Z|c2|"+tt.perDay[1], "2024-03-06T00:00:00Z|c1|"+tt.perDay[2])
			u = e.query(keyAcme, key, days+"&group_by=customer_id")
			wantLines(t, "whole range", u.lines("customer_id"),
				"2024-03-05T00:00:00Z|c1|"+tt.wholeRange[0], "2024-03-05T00:00:00Z|c2|"+tt.wholeRange[1])
		})
	}
}

// TestDecimalSumsExact: ten thousand readings of 0.1 sum to exactly 1000,
// and values beyond float64's precision survive to the JSON number.
func TestDecimalSumsExact(t *testing.T) {
	e := newEnv(t)
	m := e.createMeter(keyAcme, `{"key": "credits", "event_type": "x", "aggregation": "SUM", "value_property": "$.v"}`)
	start := at(t, "2024-03-05T00:00:00Z")
	rows := make([]reading, 0, 10_000)
	for i := range 10_000 {
		rows = append(rows, reading{org: "acme", meter: "credits", revision: m.Revision, customer: "small",
			eventID: fmt.Sprintf("e%05d", i), time: start.Add(time.Duration(i) * 997 * time.Millisecond), value: "0.1"})
	}
	rows = append(rows,
		reading{org: "acme", meter: "credits", revision: m.Revision, customer: "big", eventID: "b1", time: start, value: "12345678901234567890.123456789012"},
		reading{org: "acme", meter: "credits", revision: m.Revision, customer: "big", eventID: "b2", time: start, value: "0.000000000001"})
	e.insert(rows...)
	u := e.query(keyAcme, "credits", "from=2024-03-05T00:00:00Z&to=2024-03-06T00:00:00Z&group_by=customer_id")
	wantLines(t, "sums", u.lines("customer_id"),
		"2024-03-05T00:00:00Z|big|12345678901234567890.123456789013",
		"2024-03-05T00:00:00Z|small|1000")
	u = e.query(keyAcme, "credits", "from=2024-03-05T00:00:00Z&to=2024-03-06T00:00:00Z&window_size=HOUR&customer_id=small")
	sum := decimal.Zero
	for _, d := range u.Data {
		sum = sum.Add(decimal.RequireFromString(d.Value.String()))
	}
	if len(u.Data) != 3 || !sum.Equal(decimal.NewFromInt(1000)) {
		t.Errorf("hourly windows: %d rows summing to %s, want 3 rows summing to 1000", len(u.Data), sum)
	}
}

// TestDuplicatesFolded: the same readings written three times (retried
// inserts, redelivered records) count once. Merges are stopped so the
// duplicates are really on disk when the query runs.
func TestDuplicatesFolded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.conn.Exec(ctx, "SYSTEM STOP MERGES readings"); err != nil {
		t.Fatal(err)
	}
	m := e.createMeter(keyAcme, `{"key": "tokens", "event_type": "llm", "aggregation": "SUM", "value_property": "$.v"}`)
	rows := []reading{
		{org: "acme", meter: "tokens", revision: m.Revision, customer: "c1", eventID: "e1", time: at(t, "2024-03-05T10:00:00.25Z"), value: "0.1"},
		{org: "acme", meter: "tokens", revision: m.Revision, customer: "c1", eventID: "e2", time: at(t, "2024-03-05T10:00:00.75Z"), value: "0.2"},
		{org: "acme", meter: "tokens", revision: m.Revision, customer: "c2", eventID: "e1", time: at(t, "2024-03-05T11:00:00Z"), value: "5"},
	}
	for range 3 {
		e.insert(rows...)
	}
	var stored uint64
	if err := e.conn.QueryRow(ctx, "SELECT count() FROM readings").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 9 {
		t.Fatalf("%d rows on disk, want the 9 written", stored)
	}
	u := e.query(keyAcme, "tokens", "from=2024-03-05T00:00:00Z&to=2024-03-06T00:00:00Z&group_by=customer_id")
	wantLines(t, "folded", u.lines("customer_id"), "2024-03-05T00:00:00Z|c1|0.3", "2024-03-05T00:00:00Z|c2|5")
}

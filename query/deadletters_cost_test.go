package query

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tally-oss/tally/query/inspect"
)

// TestDeadLettersPageReadsThePageNotTheHistory: a page of dead letters
// must not read every matching record. A producer bug that sends large
// events the meters cannot read leaves thousands of dead letters of up to
// 2 MiB each; the page asked for ten of them used to read the payload of
// all of them in the week (the substring was computed for every row
// before ORDER BY ... LIMIT): measured here, 400 dead letters of 1 MiB
// took 1-2 s for limit=1 where the keys alone took 3 ms, so a few
// thousand pass query.timeout and the organization's dead letters answer
// 503 for good, while each look loads the shared ClickHouse with
// gigabytes. Here ClickHouse refuses to read more than 48 MiB
// (max_bytes_to_read) for a page of 10 out of 200 MiB of records.
func TestDeadLettersPageReadsThePageNotTheHistory(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC().Truncate(time.Second)
	buf := make([]byte, 768<<10) // 1 MiB of base64
	for part := range 8 {
		var rows []deadLetterRow
		for i := range 25 {
			rand.Read(buf)
			at := now.Add(time.Duration(part-8) * time.Minute)
			rows = append(rows, deadLetterRow{org: "acme", customer: fmt.Sprintf("c%d", i%5), eventID: fmt.Sprintf("e%d-%02d", part, i),
				eventType: "llm", meter: "tokens", reason: "value_missing", message: "$.tokens is missing",
				payload: `{"v":1,"p":"` + base64.StdEncoding.EncodeToString(buf) + `"}`,
				time:    at, ingestedAt: at, deadLetteredAt: at, offset: int64(part*100 + i)})
		}
		insertDeadLetters(t, e.conn, rows...)
	}
	var read atomic.Uint64 // bytes ClickHouse reports read, over the page's queries
	ctx := clickhouse.Context(context.Background(), clickhouse.WithProgress(func(p *clickhouse.Progress) { read.Add(p.Bytes) }))
	page, err := inspect.NewReader(e.conn, nil).DeadLetters(ctx, inspect.DeadLetterQuery{OrgID: "acme", Since: now.Add(-time.Hour), Limit: 10})
	if err != nil {
		t.Fatalf("a page of 10 dead letters: %v", err)
	}
	if page.Total != 200 || len(page.Latest) != 10 {
		t.Fatalf("total %d, %d listed", page.Total, len(page.Latest))
	}
	for _, d := range page.Latest {
		if !d.RecordCut || len(d.Record) > inspect.MaxListedRecord || d.Record[:12] != `{"v":1,"p":"` || d.EventID[:2] != "e7" {
			t.Errorf("dead letter %s: cut %v, record of %d bytes starting %q", d.EventID, d.RecordCut, len(d.Record), d.Record[:12])
		}
	}
	// The 10 newest are in the last insert's part (25 MiB of records):
	// reading it is the most a page of them needs here.
	if got := read.Load(); got > 48<<20 {
		t.Errorf("a page of 10 dead letters read %d MiB; the organization's records are 200 MiB", got>>20)
	} else {
		t.Logf("a page of 10 dead letters read %d MiB", got>>20)
	}
}

// TestDeadLettersFullPageOfLongIDs: the records of a page are read by
// their keys, which travel in the query's text; a full page (1000) of
// dead letters with the longest customer and event ids (256 and 128
// characters) must not exceed ClickHouse's max_query_size (256 KiB).
func TestDeadLettersFullPageOfLongIDs(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC().Truncate(time.Second)
	var rows []deadLetterRow
	for i := range inspect.MaxLimit {
		customer := fmt.Sprintf("%04d", i) + strings.Repeat("é", 252)
		rows = append(rows, deadLetterRow{org: "acme", customer: customer, eventID: fmt.Sprintf("%04d", i) + strings.Repeat("x", 124),
			eventType: "llm", meter: "tokens", reason: "value_missing", message: "m", payload: `{"v":1}`,
			time: now, ingestedAt: now, deadLetteredAt: now, offset: int64(i)})
	}
	insertDeadLetters(t, e.conn, rows...)
	page, err := inspect.NewReader(e.conn, nil).DeadLetters(context.Background(), inspect.DeadLetterQuery{OrgID: "acme", Since: now.Add(-time.Hour), Limit: inspect.MaxLimit})
	if err != nil {
		t.Fatalf("a full page: %v", err)
	}
	if len(page.Latest) != inspect.MaxLimit {
		t.Fatalf("%d listed", len(page.Latest))
	}
	for _, d := range page.Latest {
		if d.Record != `{"v":1}` {
			t.Fatalf("dead letter %s…: record %q", d.EventID[:4], d.Record)
		}
	}
}

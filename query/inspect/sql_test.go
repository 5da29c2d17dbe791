package inspect

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestDeadLetterSQL(t *testing.T) {
	since := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		q         DeadLetterQuery
		wantWhere string
		wantArgs  []any
	}{
		{"organization and time only", DeadLetterQuery{OrgID: "acme", Since: since, Limit: 100},
			"org_id = ? AND dead_lettered_at >= toDateTime(?)", []any{"acme", since.Unix()}},
		{"reason", DeadLetterQuery{OrgID: "acme", Since: since, Reason: "value_missing", Limit: 5},
			"org_id = ? AND dead_lettered_at >= toDateTime(?) AND reason = ?", []any{"acme", since.Unix(), "value_missing"}},
		{"reason and customer", DeadLetterQuery{OrgID: "acme", Since: since, Reason: "value_missing", CustomerID: "c' OR 1=1", Limit: 5},
			"org_id = ? AND dead_lettered_at >= toDateTime(?) AND reason = ? AND customer_id = ?",
			[]any{"acme", since.Unix(), "value_missing", "c' OR 1=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sql, args := reasonCountsSQL(tt.q)
			want := "SELECT reason, count() AS n FROM dead_letters FINAL WHERE " + tt.wantWhere + " GROUP BY reason ORDER BY n DESC, reason"
			if sql != want || !reflect.DeepEqual(args, tt.wantArgs) {
				t.Errorf("reasonCountsSQL:\n got %s %v\nwant %s %v", sql, args, want, tt.wantArgs)
			}
			sql, args = latestSQL(tt.q)
			if !strings.HasPrefix(sql, "SELECT customer_id, event_id, event_type, meter_key, reason, message, time,") ||
				strings.Contains(sql, "payload") ||
				!strings.Contains(sql, " FROM dead_letters FINAL WHERE "+tt.wantWhere+" ORDER BY dead_lettered_at DESC, ") ||
				!strings.HasSuffix(sql, " LIMIT ?") {
				t.Errorf("latestSQL: %s", sql)
			}
			wantArgs := append(append([]any{}, tt.wantArgs...), tt.q.Limit)
			if !reflect.DeepEqual(args, wantArgs) {
				t.Errorf("latestSQL args %v, want %v", args, wantArgs)
			}
		})
	}
}

func TestRecordsSQL(t *testing.T) {
	sql, args := recordsSQL("acme", []deadLetterKey{{"c1", "e1", "tokens", 2, 7}, {"c' OR 1=1", "", "", 0, 9}})
	want := "SELECT customer_id, event_id, meter_key, kafka_partition, kafka_offset, substring(payload, 1, ?) AS record, length(payload) AS record_bytes" +
		" FROM dead_letters FINAL PREWHERE org_id = ? AND (customer_id, event_id, meter_key, kafka_partition, kafka_offset) IN ((?, ?, ?, ?, ?), (?, ?, ?, ?, ?))"
	wantArgs := []any{MaxListedRecord + 1, "acme", "c1", "e1", "tokens", int32(2), int64(7), "c' OR 1=1", "", "", int32(0), int64(9)}
	if sql != want || !reflect.DeepEqual(args, wantArgs) {
		t.Errorf("recordsSQL:\n got %s %v\nwant %s %v", sql, args, want, wantArgs)
	}
}

func TestEventsSQL(t *testing.T) {
	now := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	sql, args := eventsSQL("acme", now.Add(-time.Hour), now.Add(-24*time.Hour))
	want := "SELECT countIf(ingested_at >= toDateTime(?)) AS last_hour, count() AS last_day, max(ingested_at) AS latest" +
		" FROM events FINAL PREWHERE ingested_at >= toDateTime(?) WHERE org_id = ?"
	wantArgs := []any{now.Add(-time.Hour).Unix(), now.Add(-24 * time.Hour).Unix(), "acme"}
	if sql != want || !reflect.DeepEqual(args, wantArgs) {
		t.Errorf("eventsSQL:\n got %s %v\nwant %s %v", sql, args, want, wantArgs)
	}
}

// TestNoOrganizationNoRead: a query that lost its organization fails
// before it reaches ClickHouse (the reader has no connection here).
func TestNoOrganizationNoRead(t *testing.T) {
	r := NewReader(nil, nil)
	if _, err := r.DeadLetters(context.Background(), DeadLetterQuery{Limit: 1}); err != errNoOrg {
		t.Errorf("DeadLetters without an organization: %v", err)
	}
	if _, err := r.Counts(context.Background(), "", time.Now()); err != errNoOrg {
		t.Errorf("Counts without an organization: %v", err)
	}
	if _, err := r.DeadLetters(context.Background(), DeadLetterQuery{OrgID: "acme", Limit: MaxLimit + 1}); err == nil {
		t.Error("a limit above MaxLimit was accepted")
	}
}

func TestCutRecord(t *testing.T) {
	for _, tt := range []struct {
		name  string
		head  string
		total uint64
	}{
		{"ascii", strings.Repeat("a", MaxListedRecord+1), 40 << 10},
		{"multibyte at the cut", strings.Repeat("é", MaxListedRecord/2+1), 2 << 20},
		{"invalid utf-8", strings.Repeat("\xff", MaxListedRecord+1), MaxListedRecord + 1},
	} {
		got := cutRecord(tt.head, tt.total)
		marker := "…(" + strconv.FormatUint(tt.total, 10) + " bytes)"
		if len(got) > MaxListedRecord || !strings.HasSuffix(got, marker) || !strings.HasPrefix(tt.head, strings.TrimSuffix(got, marker)) {
			t.Errorf("%s: %d bytes ending %q", tt.name, len(got), got[max(0, len(got)-20):])
		}
		if utf8.ValidString(tt.head) && !utf8.ValidString(got) {
			t.Errorf("%s: cut inside a rune", tt.name)
		}
	}
}

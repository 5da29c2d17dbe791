// Package inspect reads what the pipeline did with one organization's
// events, for the people who operate it: the dead letters (events the
// aggregator could not meter, with their reason and record) and the
// counts behind the pipeline status (events stored, dead letters, their
// latest times). Like query/usage it is HTTP-free: typed requests in,
// typed results out, SQL built here with every value bound and the
// organization the first condition of every query.
//
// Every count is exact. dead_letters and events are ReplacingMergeTrees
// keyed by row identity (schemas/clickhouse/0001, 0003): a retried insert
// or a redelivered batch writes identical rows again, which ClickHouse
// folds only eventually, so both are read with FINAL. On a cluster the
// names are the Distributed tables, and FINAL folds per shard, which
// holds every copy of a row (both are sharded by organization and
// customer, part of their identity).
package inspect

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/schemas"
)

// MaxLimit bounds the dead letters of one page.
const MaxLimit = 1000

// MaxListedRecord bounds the bytes of each record in a page of dead
// letters: a record may be 2 MiB, and a page of a thousand of them would
// be gigabytes. A longer record is listed as its first bytes, ending in
// "…(N bytes)" (schemas.Truncate).
const MaxListedRecord = 32 << 10

// Reasons are the reason codes the aggregator stores with dead letters
// (schemas/evaluate.go), which a filter may name.
var Reasons = []string{
	schemas.ReasonValueMissing, schemas.ReasonValueNotNumber, schemas.ReasonValueOutOfRange,
	schemas.ReasonValueTooPrecise, schemas.ReasonValueNotScalar, schemas.ReasonGroupNotScalar,
	schemas.ReasonPropertiesJSON, schemas.ReasonRecordMalformed, schemas.ReasonMeterInvalid,
	schemas.ReasonUnwritable, schemas.ReasonEvaluationFailed,
}

// DeadLetterQuery selects the dead letters of one organization
// dead-lettered at or after Since, of one reason and one customer when
// those are set.
type DeadLetterQuery struct {
	OrgID      string
	Reason     string // "": every reason
	CustomerID string // "": every customer
	Since      time.Time
	Limit      int // 1..MaxLimit
}

// DeadLetter is one event (or unreadable record) that one meter could not
// meter. Record is the Kafka record as the aggregator read it, at most
// MaxListedRecord bytes; it is empty when another dead letter of the same
// record (for another meter) carries it, which Message then says.
type DeadLetter struct {
	CustomerID, EventID, EventType, MeterKey string
	Reason, Message                          string
	Record                                   string
	RecordCut                                bool // Record is the first bytes of a longer record
	Time, IngestedAt, DeadLetteredAt         time.Time
}

// ReasonCount is how many dead letters have one reason.
type ReasonCount struct {
	Reason string
	Count  uint64
}

// DeadLetters is a page of dead letters: the latest Limit, newest first,
// and the count of every matching dead letter by reason, most first.
type DeadLetters struct {
	Latest   []DeadLetter
	ByReason []ReasonCount
	Total    uint64
}

// Observer is told about every ClickHouse call (the query service's
// metrics).
type Observer interface {
	ObserveClickHouse(operation string, start time.Time, err error)
}

// Reader reads dead letters and pipeline counts from ClickHouse. The
// connection must be bound to Tally's database.
type Reader struct {
	conn     driver.Conn
	observer Observer
}

// NewReader returns a reader on conn; observer may be nil.
func NewReader(conn driver.Conn, observer Observer) *Reader {
	return &Reader{conn: conn, observer: observer}
}

// errNoOrg guards isolation: a query without an organization must fail
// rather than read every organization's rows.
var errNoOrg = errors.New("inspect: query without an organization")

// DeadLetters returns the page q selects.
func (r *Reader) DeadLetters(ctx context.Context, q DeadLetterQuery) (DeadLetters, error) {
	if q.OrgID == "" {
		return DeadLetters{}, errNoOrg
	}
	if q.Limit < 1 || q.Limit > MaxLimit {
		return DeadLetters{}, fmt.Errorf("inspect: limit %d outside 1..%d", q.Limit, MaxLimit)
	}
	var out DeadLetters
	err := r.observe(ctx, "read_dead_letters", func(ctx context.Context) error {
		var err error
		if out.ByReason, err = r.reasonCounts(ctx, q); err != nil {
			return err
		}
		for _, c := range out.ByReason {
			out.Total += c.Count
		}
		if out.Total == 0 {
			return nil
		}
		out.Latest, err = r.latest(ctx, q)
		return err
	})
	return out, err
}

// deadLetterWhere is the condition of q's dead letters and its arguments.
// The time condition is on dead_lettered_at, which is not in the sort key
// and differs between the copies of a dead letter written by the live
// stream and by a backfill: whichever of its copies match, FINAL folds
// them into one row, so a dead letter counts once.
func deadLetterWhere(q DeadLetterQuery) (string, []any) {
	conds := []string{"org_id = ?", "dead_lettered_at >= toDateTime(?)"}
	args := []any{q.OrgID, q.Since.Unix()}
	if q.Reason != "" {
		conds = append(conds, "reason = ?")
		args = append(args, q.Reason)
	}
	if q.CustomerID != "" {
		conds = append(conds, "customer_id = ?")
		args = append(args, q.CustomerID)
	}
	return strings.Join(conds, " AND "), args
}

// reasonCountsSQL counts q's dead letters by reason, most first, then by
// reason for a stable order.
func reasonCountsSQL(q DeadLetterQuery) (string, []any) {
	where, args := deadLetterWhere(q)
	return "SELECT reason, count() AS n FROM dead_letters FINAL WHERE " + where +
		" GROUP BY reason ORDER BY n DESC, reason", args
}

// latestSQL selects q's newest dead letters, without their records;
// ties are broken by the rest of the row's identity so that a page is the
// same on every read. The records are read by recordsSQL for the page
// only: a record may be 2 MiB, and reading the records of every matching
// dead letter to keep Limit of them (the sort happens after the columns
// are read) made a page cost the organization's whole history of
// records.
func latestSQL(q DeadLetterQuery) (string, []any) {
	where, args := deadLetterWhere(q)
	sql := "SELECT customer_id, event_id, event_type, meter_key, reason, message," +
		" time, ingested_at, dead_lettered_at, kafka_partition, kafka_offset FROM dead_letters FINAL WHERE " + where +
		" ORDER BY dead_lettered_at DESC, ingested_at DESC, customer_id, event_id, meter_key, kafka_partition, kafka_offset" +
		" LIMIT ?"
	return sql, append(args, q.Limit)
}

// deadLetterKey is the identity of a dead letter (the table's sort key
// after org_id).
type deadLetterKey struct {
	customerID, eventID, meterKey string
	partition                     int32
	offset                        int64
}

// recordsSQL reads the records of the dead letters keys names, of
// organization orgID: the first MaxListedRecord+1 bytes of each and its
// length. The condition is the table's sort key, so only the granules
// that hold these rows are read; it is a PREWHERE, which runs before
// FINAL folds the copies of a row (with WHERE, ClickHouse 18.16 reads and
// folds every row of the table's parts first, payloads included): it
// keeps or drops every copy of a row alike, since they share the sort
// key, and FINAL then picks the same copy of each as latestSQL did.
func recordsSQL(orgID string, keys []deadLetterKey) (string, []any) {
	args := make([]any, 0, 2+5*len(keys))
	args = append(args, MaxListedRecord+1, orgID)
	tuples := make([]string, 0, len(keys))
	for _, k := range keys {
		tuples = append(tuples, "(?, ?, ?, ?, ?)")
		args = append(args, k.customerID, k.eventID, k.meterKey, k.partition, k.offset)
	}
	return "SELECT customer_id, event_id, meter_key, kafka_partition, kafka_offset," +
		" substring(payload, 1, ?) AS record, length(payload) AS record_bytes FROM dead_letters FINAL" +
		" PREWHERE org_id = ? AND (customer_id, event_id, meter_key, kafka_partition, kafka_offset) IN (" +
		strings.Join(tuples, ", ") + ")", args
}

func (r *Reader) reasonCounts(ctx context.Context, q DeadLetterQuery) ([]ReasonCount, error) {
	sql, args := reasonCountsSQL(q)
	rows, err := r.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("count dead letters: %w", err)
	}
	defer rows.Close()
	out := []ReasonCount{}
	for rows.Next() {
		var c ReasonCount
		if err := rows.Scan(&c.Reason, &c.Count); err != nil {
			return nil, fmt.Errorf("count dead letters: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count dead letters: %w", err)
	}
	return out, nil
}

func (r *Reader) latest(ctx context.Context, q DeadLetterQuery) ([]DeadLetter, error) {
	sql, args := latestSQL(q)
	rows, err := r.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	defer rows.Close()
	out := []DeadLetter{}
	var keys []deadLetterKey
	for rows.Next() {
		var (
			d DeadLetter
			k deadLetterKey
		)
		if err := rows.Scan(&d.CustomerID, &d.EventID, &d.EventType, &d.MeterKey, &d.Reason, &d.Message,
			&d.Time, &d.IngestedAt, &d.DeadLetteredAt, &k.partition, &k.offset); err != nil {
			return nil, fmt.Errorf("read dead letters: %w", err)
		}
		k.customerID, k.eventID, k.meterKey = d.CustomerID, d.EventID, d.MeterKey
		d.Time, d.IngestedAt, d.DeadLetteredAt = d.Time.UTC(), d.IngestedAt.UTC(), d.DeadLetteredAt.UTC()
		out = append(out, d)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	if len(keys) == 0 {
		return out, nil
	}
	records, err := r.records(ctx, q.OrgID, keys)
	if err != nil {
		return nil, err
	}
	for i, k := range keys {
		rec, ok := records[k]
		if !ok {
			continue // not there any more (a dropped partition): no record
		}
		out[i].Record = rec.text
		if rec.bytes > MaxListedRecord {
			out[i].Record, out[i].RecordCut = cutRecord(rec.text, rec.bytes), true
		}
	}
	return out, nil
}

type recordHead struct {
	text  string
	bytes uint64
}

// maxKeysText bounds the text of the keys one recordsSQL carries: the
// bound values are written into the query's text, which ClickHouse
// refuses beyond max_query_size (256 KiB by default); a page of 1000
// dead letters with the longest ids would pass it.
const maxKeysText = 64 << 10

// records reads the records of keys (recordsSQL), in as many queries as
// the keys' text needs.
func (r *Reader) records(ctx context.Context, orgID string, keys []deadLetterKey) (map[deadLetterKey]recordHead, error) {
	out := make(map[deadLetterKey]recordHead, len(keys))
	for start := 0; start < len(keys); {
		end, size := start, 0
		for end < len(keys) && (end == start || size < maxKeysText) {
			k := keys[end]
			// Each byte may be escaped (doubled) in the query's text.
			size += 2*(len(k.customerID)+len(k.eventID)+len(k.meterKey)) + 48
			end++
		}
		if err := r.recordsOf(ctx, orgID, keys[start:end], out); err != nil {
			return nil, err
		}
		start = end
	}
	return out, nil
}

// recordsOf reads the records of keys into out.
func (r *Reader) recordsOf(ctx context.Context, orgID string, keys []deadLetterKey, out map[deadLetterKey]recordHead) error {
	sql, args := recordsSQL(orgID, keys)
	rows, err := r.conn.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("read dead-letter records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k   deadLetterKey
			rec recordHead
		)
		if err := rows.Scan(&k.customerID, &k.eventID, &k.meterKey, &k.partition, &k.offset, &rec.text, &rec.bytes); err != nil {
			return fmt.Errorf("read dead-letter records: %w", err)
		}
		out[k] = rec
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read dead-letter records: %w", err)
	}
	return nil
}

// cutRecord returns the first bytes of a record of total bytes whose
// head was read, cut at a rune boundary and ending in "…(N bytes)" like
// schemas.Truncate, in at most MaxListedRecord bytes.
func cutRecord(head string, total uint64) string {
	marker := fmt.Sprintf("…(%d bytes)", total)
	n := min(len(head), MaxListedRecord-len(marker))
	for i := n; i < len(head) && i > 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(head[i]) {
			n = i
			break
		}
	}
	return head[:n] + marker
}

// observe runs read, telling the observer how long it took and whether
// it failed.
func (r *Reader) observe(ctx context.Context, operation string, read func(context.Context) error) error {
	start := time.Now()
	err := read(ctx)
	if r.observer != nil {
		r.observer.ObserveClickHouse(operation, start, err)
	}
	return err
}

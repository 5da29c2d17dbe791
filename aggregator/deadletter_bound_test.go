package aggregator

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/schemas"
)

// encodedTopic counts the bytes of the dead-letter messages it is handed.
type encodedTopic struct{ bytes, count int }

func (p *encodedTopic) PublishDeadLetters(_ context.Context, rows []DeadLetterRow) error {
	for _, r := range rows {
		v, err := encodeDeadLetter(r)
		if err != nil {
			return err
		}
		p.bytes += len(v)
		p.count++
	}
	return nil
}

// TestDeadLetterBytesAreBoundedByTheBatch (review 6, F3): defect 8 bounds a
// batch by the bytes of its records (BatchMaxBytes), but every failing
// meter of an event makes its own dead-letter row, and the ClickHouse
// insert copies the record into the block once per row (store.go,
// InsertDeadLetters: string(r.Payload), up to 2 MiB each); records up to
// 512 KiB are also copied into every one of their dead-letter messages on
// the topic. An organization with M meters on an event type that all fail
// (a missing value property, or M meters that stop validating:
// meter_invalid is per event and meter) turns a 16 MiB batch into M times
// that: 16 events of ~1 MiB and 20 meters are 320 rows, ~312 MiB copied
// into one insert block, per partition, at once. Nothing bounds M, so the
// Config doc's bound ("about 16 + 10 + 1 MiB of records per partition")
// does not hold and a backlog of such records can OOM-loop the aggregator.
func TestDeadLetterBytesAreBoundedByTheBatch(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	retry := retrier{initial: time.Millisecond, max: 10 * time.Millisecond, logger: testLogger()}
	var meters []schemas.Meter
	for i := range 20 {
		meters = append(meters, mustParseMeter(t, fmt.Sprintf(
			`{"key":"m%d","event_type":"big","aggregation":"SUM","value_property":"amount"}`, i)))
	}
	topic := &encodedTopic{}
	store := &refusingStore{flaked: map[string]bool{tableEvents: true, tableReadings: true, tableDeadLetters: true}, refuse: func(string, string, string) bool { return false }}
	p := &processor{
		store:     &retryingStore{next: store, retry: retry, metrics: m},
		meters:    &retryingMeters{next: fixedMeters{testOrg: meters}, retry: retry, metrics: m},
		publisher: &retryingPublisher{next: topic, retry: retry, metrics: m},
		now:       time.Now,
	}
	pad := strings.Repeat("x", 1000<<10) // ~1 MiB event, no amount: every meter fails
	var recs []schemas.Record
	for i := range 16 {
		recs = append(recs, event("c1", fmt.Sprintf("e%d", i), "big", t0, `{"pad":"`+pad+`"}`))
	}
	msgs := messagesOf(t, recs...)
	batchBytes := 0
	for _, msg := range msgs {
		batchBytes += messageBytes(msg)
	}
	if batchBytes > DefaultBatchMaxBytes {
		t.Fatalf("batch of %d bytes is over the default batch-max-bytes %d", batchBytes, DefaultBatchMaxBytes)
	}
	if _, err := p.process(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	payload := 0 // what the insert copies: string(r.Payload) per row into the block
	for _, r := range store.deadLetters {
		payload += len(r.Payload) + len(r.Message)
	}
	if payload > 2*DefaultBatchMaxBytes {
		t.Errorf("a batch of %d bytes of records (within aggregator.batch-max-bytes %d) made %d dead-letter rows whose insert copies %d MiB into one block",
			batchBytes, DefaultBatchMaxBytes, len(store.deadLetters), payload>>20)
	}
	if topic.bytes > 2*DefaultBatchMaxBytes {
		t.Errorf("a batch of %d bytes of records (within aggregator.batch-max-bytes %d) made %d dead letters of %d MiB, encoded at once",
			batchBytes, DefaultBatchMaxBytes, topic.count, topic.bytes>>20)
	}
	_ = kafka.Message{}
}

// scanSource is a BackfillSource whose events table holds recs.
type scanSource struct{ recs []schemas.Record }

func (s scanSource) CompletedBackfills(context.Context) (map[BackfillKey]time.Time, error) {
	return nil, nil
}

func (s scanSource) InvalidMeterDeadLetters(context.Context) (map[BackfillKey]time.Time, error) {
	return nil, nil
}

func (s scanSource) ScanEvents(_ context.Context, _ string, _ []string, fn func(schemas.Record, Position) error) error {
	for i, r := range s.recs {
		if err := fn(r, Position{Offset: int64(i)}); err != nil {
			return err
		}
	}
	return nil
}

func (s scanSource) MarkBackfilled(context.Context, BackfillKey, int) error { return nil }

// chunkStore records the largest dead-letter insert it is handed.
type chunkStore struct {
	refusingStore
	largest int
}

func (s *chunkStore) InsertDeadLetters(ctx context.Context, rows []DeadLetterRow) error {
	n := 0
	for i := range rows {
		n += rows[i].size()
	}
	s.largest = max(s.largest, n)
	return s.refusingStore.InsertDeadLetters(ctx, rows)
}

// TestBackfillChunksAreBoundedInBytes: the backfill holds a chunk of rows
// before writing it; 10,000 rows of dead letters that carry records of
// 1 MiB would be 10 GiB, so a chunk is bounded in bytes too.
// (Before the fix: the 40 dead letters of 40 MiB were one chunk.)
func TestBackfillChunksAreBoundedInBytes(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	retry := retrier{initial: time.Millisecond, max: 10 * time.Millisecond, logger: testLogger()}
	pad := strings.Repeat("x", 1<<20)
	var recs []schemas.Record
	for i := range 40 {
		recs = append(recs, event("c1", fmt.Sprintf("e%d", i), "big", t0, `{"pad":"`+pad+`"}`))
	}
	store := &chunkStore{refusingStore: refusingStore{flaked: map[string]bool{tableReadings: true, tableDeadLetters: true},
		refuse: func(string, string, string) bool { return false }}}
	b := newBackfiller(scanSource{recs}, store, retry, m, testLogger())
	meter := mustParseMeter(t, `{"key":"amount","event_type":"big","aggregation":"SUM","value_property":"amount"}`)
	if _, err := b.backfill(t.Context(), revisionWork{org: testOrg, meter: meter}); err != nil {
		t.Fatal(err)
	}
	if len(store.deadLetters) != 40 {
		t.Fatalf("%d dead letters, want 40", len(store.deadLetters))
	}
	if limit := backfillChunkBytes + 2<<20 + 64<<10; store.largest > limit {
		t.Errorf("a chunk of %d MiB of dead letters, want at most %d MiB", store.largest>>20, limit>>20)
	}
}

// versionStore is a refusingStore whose lookup finds the events it stored.
type versionStore struct {
	refusingStore
	largestReadings int
}

func (s *versionStore) StoredVersions(_ context.Context, keys []EventKey) (map[EventKey][]Position, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[EventKey]bool{}
	for _, k := range keys {
		want[k] = true
	}
	out := map[EventKey][]Position{}
	for _, e := range s.events {
		if want[e.EventKey] {
			out[e.EventKey] = append(out[e.EventKey], e.Position)
		}
	}
	return out, nil
}

func (s *versionStore) InsertReadings(ctx context.Context, rows []ReadingRow) error {
	s.largestReadings = max(s.largestReadings, len(rows))
	return s.refusingStore.InsertReadings(ctx, rows)
}

// TestBatchRowsAreBoundedWhateverTheMeters: every meter of an event's type
// makes a row, so a batch holds records x meters rows; past maxPassRows a
// batch is processed in several passes, and each event still counts once
// (a version after the cut whose first version came before is a
// duplicate, found by the lookup as in a later batch).
// (Before the fix: one insert of 120,030 readings.)
func TestBatchRowsAreBoundedWhateverTheMeters(t *testing.T) {
	const events, meters = 4000, 30
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	retry := retrier{initial: time.Millisecond, max: 10 * time.Millisecond, logger: testLogger()}
	var defs []schemas.Meter
	for i := range meters {
		defs = append(defs, mustParseMeter(t, fmt.Sprintf(`{"key":"m%d","event_type":"api","aggregation":"COUNT"}`, i)))
	}
	store := &versionStore{refusingStore: refusingStore{flaked: map[string]bool{tableEvents: true, tableReadings: true, tableDeadLetters: true},
		refuse: func(string, string, string) bool { return false }}}
	p := &processor{
		store:     &retryingStore{next: store, retry: retry, metrics: m},
		meters:    &retryingMeters{next: fixedMeters{testOrg: defs}, retry: retry, metrics: m},
		publisher: &retryingPublisher{next: &refusingTopic{refuse: func(DeadLetterRow) bool { return false }}, retry: retry, metrics: m},
		now:       time.Now,
	}
	var recs []schemas.Record
	for i := range events {
		recs = append(recs, event("c1", fmt.Sprintf("e%d", i), "api", t0, `{}`))
	}
	recs = append(recs, event("c1", "e0", "api", t0, `{"changed":1}`), // first version in the first pass
		event("c1", "new", "api", t0, `{}`), event("c1", "new", "api", t0, `{"changed":1}`))
	res, err := p.process(t.Context(), messagesOf(t, recs...))
	if err != nil {
		t.Fatal(err)
	}
	if store.largestReadings > maxPassRows+meters {
		t.Errorf("an insert of %d readings, want at most %d", store.largestReadings, maxPassRows+meters)
	}
	perEvent := map[string]int{}
	for _, r := range store.readings {
		perEvent[r.EventID]++
	}
	if len(perEvent) != events+1 {
		t.Errorf("readings of %d events, want %d", len(perEvent), events+1)
	}
	for id, n := range perEvent {
		if n != meters {
			t.Errorf("event %s: %d readings, want %d", id, n, meters)
		}
	}
	if res.outcomes[outcomeMetered] != events+1 || res.outcomes[outcomeDuplicate] != 2 || len(res.ingestedAt) != events+1 {
		t.Errorf("outcomes %v, %d latencies; want %d metered, 2 duplicates", res.outcomes, len(res.ingestedAt), events+1)
	}
}

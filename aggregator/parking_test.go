package aggregator

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/schemas"
)

// Fakes for the unit tests of parking: ClickHouse and Kafka cannot be made
// to refuse one particular row on demand, and what is tested here is the
// retry wrapper and the batch, not the clients (TestPoisonEvents... and
// TestDeadLetterTopicRefuses run against the real ones).

// refusingStore refuses, with a ClickHouse data error, every insert that
// holds a row refuse names (event id of an event, reading or dead
// letter), and fails the first insert of each table with a lost
// connection, which is retried.
type refusingStore struct {
	mu          sync.Mutex
	refuse      func(table, eventID, message string) bool
	flaked      map[string]bool
	events      []EventRow
	readings    []ReadingRow
	deadLetters []DeadLetterRow
}

var _ Store = (*refusingStore)(nil)

func (s *refusingStore) StoredVersions(context.Context, []EventKey) (map[EventKey][]Position, error) {
	return map[EventKey][]Position{}, nil
}

func (s *refusingStore) check(table string, ids, messages []string) error {
	if !s.flaked[table] {
		s.flaked[table] = true
		return fmt.Errorf("insert into %s: %w", table, io.ErrUnexpectedEOF)
	}
	for i, id := range ids {
		if s.refuse(table, id, messages[i]) {
			return fmt.Errorf("insert into %s: %w", table, &clickhouse.Exception{Code: 407, Message: "Decimal math overflow"})
		}
	}
	return nil
}

func (s *refusingStore) InsertEvents(_ context.Context, rows []EventRow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.ID)
	}
	if err := s.check(tableEvents, ids, make([]string, len(ids))); err != nil {
		return err
	}
	s.events = append(s.events, rows...)
	return nil
}

func (s *refusingStore) InsertReadings(_ context.Context, rows []ReadingRow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.EventID)
	}
	if err := s.check(tableReadings, ids, make([]string, len(ids))); err != nil {
		return err
	}
	s.readings = append(s.readings, rows...)
	return nil
}

func (s *refusingStore) InsertDeadLetters(_ context.Context, rows []DeadLetterRow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids, messages []string
	for _, r := range rows {
		ids, messages = append(ids, r.EventID), append(messages, r.Message)
	}
	if err := s.check(tableDeadLetters, ids, messages); err != nil {
		return err
	}
	s.deadLetters = append(s.deadLetters, rows...)
	return nil
}

// refusingTopic refuses a publish holding a dead letter refuse names, the
// way Kafka refuses a message larger than the topic's max.message.bytes.
type refusingTopic struct {
	mu        sync.Mutex
	refuse    func(DeadLetterRow) bool
	published []DeadLetterRow
}

func (p *refusingTopic) PublishDeadLetters(_ context.Context, rows []DeadLetterRow) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	errs := make(kafka.WriteErrors, len(rows))
	failed := false
	for i, r := range rows {
		if p.refuse(r) {
			errs[i], failed = kafka.MessageSizeTooLarge, true
		}
	}
	if failed {
		return errs
	}
	p.published = append(p.published, rows...)
	return nil
}

type fixedMeters map[string][]schemas.Meter

func (m fixedMeters) ListAll(context.Context) (map[string][]schemas.Meter, error) { return m, nil }

func mustParseMeter(t testing.TB, def string) schemas.Meter {
	t.Helper()
	m, err := schemas.ParseMeter([]byte(def))
	if err != nil {
		t.Fatal(err)
	}
	m.Revision = 1
	return m
}

func messagesOf(t testing.TB, recs ...schemas.Record) []kafka.Message {
	t.Helper()
	msgs := make([]kafka.Message, len(recs))
	for i, r := range recs {
		key, value, err := schemas.EncodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = kafka.Message{Key: key, Value: value, Offset: int64(i), Time: t0}
	}
	return msgs
}

// TestRowsThatCannotBeWrittenAreParked: rows that ClickHouse or the
// dead-letter topic refuse for a reason no retry changes are set aside
// with a reason and counted, everything else in the batch is written, and
// the batch completes, so that its offset can be committed. A lost
// connection on the way is retried, not parked.
// (Before the fix: "process: context deadline exceeded", the batch retried
// forever.)
func TestRowsThatCannotBeWrittenAreParked(t *testing.T) {
	store := &refusingStore{flaked: map[string]bool{}, refuse: func(table, id, message string) bool {
		switch table {
		case tableEvents:
			return id == "event-refused"
		case tableReadings:
			return id == "reading-refused"
		}
		// The dead letter itself, but not its shortened copy.
		return id == "dead-letter-refused" && !strings.Contains(message, "shortened")
	}}
	topic := &refusingTopic{refuse: func(r DeadLetterRow) bool {
		return r.EventID == "never-published" || (r.EventID == "shortened-published" && len(r.Payload) > 0)
	}}
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	retry := retrier{initial: time.Millisecond, max: 10 * time.Millisecond, logger: testLogger()}
	meters := fixedMeters{testOrg: {
		mustParseMeter(t, `{"key":"spend","event_type":"charge","aggregation":"SUM","value_property":"amount"}`),
	}}
	p := &processor{
		store:     &retryingStore{next: store, retry: retry, metrics: m},
		meters:    &retryingMeters{next: meters, retry: retry, metrics: m},
		publisher: &retryingPublisher{next: topic, retry: retry, metrics: m},
		now:       time.Now,
	}
	msgs := messagesOf(t,
		event("c1", "good-1", "charge", t0, `{"amount":1}`),
		event("c1", "event-refused", "charge", t0, `{"amount":2}`),
		event("c1", "reading-refused", "charge", t0, `{"amount":4}`),
		event("c1", "dead-letter-refused", "charge", t0, `{}`),
		event("c1", "shortened-published", "charge", t0, `{}`),
		event("c1", "never-published", "charge", t0, `{}`),
		event("c1", "good-2", "charge", t0, `{"amount":8}`),
	)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second) // a guard: before the fix this retried forever
	defer cancel()
	res, err := p.process(ctx, msgs)
	if err != nil {
		t.Fatalf("process: %v", err)
	}

	var stored, metered []string
	for _, e := range store.events {
		stored = append(stored, e.ID)
	}
	for _, r := range store.readings {
		metered = append(metered, r.EventID)
	}
	slices.Sort(stored)
	slices.Sort(metered)
	if want := []string{"dead-letter-refused", "good-1", "good-2", "never-published", "reading-refused", "shortened-published"}; !slices.Equal(stored, want) {
		t.Errorf("events stored %v, want %v", stored, want)
	}
	if want := []string{"good-1", "good-2"}; !slices.Equal(metered, want) {
		t.Errorf("readings of %v, want %v", metered, want)
	}

	deadLetters := map[string]DeadLetterRow{}
	for _, dl := range store.deadLetters {
		deadLetters[dl.EventID] = dl
	}
	for id, reason := range map[string]string{
		"event-refused":       schemas.ReasonUnwritable,
		"reading-refused":     schemas.ReasonUnwritable,
		"dead-letter-refused": schemas.ReasonValueMissing,
		"shortened-published": schemas.ReasonValueMissing,
		"never-published":     schemas.ReasonValueMissing,
	} {
		dl, ok := deadLetters[id]
		if !ok || dl.Reason != reason {
			t.Errorf("dead letter of %s: %+v, want reason %s", id, dl, reason)
		}
	}
	if dl := deadLetters["dead-letter-refused"]; dl.Payload != nil || !strings.Contains(dl.Message, "shortened") {
		t.Errorf("the refused dead letter was not replaced by a shortened copy: %q", dl.Message)
	}
	if dl := deadLetters["reading-refused"]; dl.MeterKey != "spend" || !strings.Contains(dl.Message, "Decimal math overflow") {
		t.Errorf("the refused reading's dead letter: meter %q, message %q", dl.MeterKey, dl.Message)
	}

	published := map[string]DeadLetterRow{}
	for _, dl := range topic.published {
		published[dl.EventID] = dl
	}
	if _, ok := published["never-published"]; ok {
		t.Error("the topic took a dead letter it refuses")
	}
	if dl, ok := published["shortened-published"]; !ok || dl.Payload != nil || !strings.Contains(dl.Message, "shortened") {
		t.Errorf("the dead letter the topic refused whole was not published shortened: %+v", dl)
	}
	for _, id := range []string{"event-refused", "reading-refused", "dead-letter-refused"} {
		if _, ok := published[id]; !ok {
			t.Errorf("dead letter of %s not published", id)
		}
	}

	for reason, want := range map[string]float64{
		parkedEvent: 1, parkedReading: 1, parkedDeadLetter: 1, parkedUnpublished: 2, parkedLoggedOnly: 1,
	} {
		if got := metricValue(t, reg, "tally_aggregator_parked_records_total", map[string]string{"reason": reason}); got != want {
			t.Errorf("parked_records_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if got := res.outcomes[outcomeMetered]; got != 2 {
		t.Errorf("%d events metered, want 2", got)
	}
	if got := res.outcomes[outcomeDeadLettered]; got != 5 {
		t.Errorf("%d events dead-lettered, want 5", got)
	}
}

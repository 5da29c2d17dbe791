package aggregator

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// quotingStore refuses the events whose id starts with "bad-" with a data
// error that quotes the refused value, as ClickHouse's parse and range
// errors do ("Cannot parse input: … 'value'").
type quotingStore struct {
	mu          sync.Mutex
	flaked      bool
	events      []EventRow
	deadLetters []DeadLetterRow
}

func (s *quotingStore) StoredVersions(context.Context, []EventKey) (map[EventKey][]Position, error) {
	return map[EventKey][]Position{}, nil
}

func (s *quotingStore) InsertEvents(_ context.Context, rows []EventRow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		if strings.HasPrefix(r.ID, "bad-") {
			return fmt.Errorf("insert into events: %w", &clickhouse.Exception{Code: 27,
				Message: "Cannot parse input: expected ',' before: '" + r.Properties + "'"})
		}
	}
	s.events = append(s.events, rows...)
	return nil
}

func (s *quotingStore) InsertReadings(context.Context, []ReadingRow) error { return nil }

func (s *quotingStore) InsertDeadLetters(_ context.Context, rows []DeadLetterRow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deadLetters = append(s.deadLetters, rows...)
	return nil
}

// TestParkedRowsKeepTheirOwnError: a partition's batch holds the events of
// many organizations. When rows of two organizations cannot be written,
// each one's dead letter must say why that row failed, not quote the
// error of another organization's row (ClickHouse's data errors quote the
// value): GET /api/v1/dead_letters shows the message to the organization
// of the dead letter.
func TestParkedRowsKeepTheirOwnError(t *testing.T) {
	store := &quotingStore{}
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	retry := retrier{initial: time.Millisecond, max: 10 * time.Millisecond, logger: testLogger()}
	p := &processor{
		store:     &retryingStore{next: store, retry: retry, metrics: m},
		meters:    &retryingMeters{next: fixedMeters{}, retry: retry, metrics: m},
		publisher: &retryingPublisher{next: &refusingTopic{refuse: func(DeadLetterRow) bool { return false }}, retry: retry, metrics: m},
		now:       time.Now,
	}
	acme := event("c1", "bad-acme", "charge", t0, `{"secret":"acme-contract-42"}`)
	globex := event("g1", "bad-globex", "charge", t0, `{"x":1}`)
	globex.OrgID = "globex"
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if _, err := p.process(ctx, messagesOf(t, acme, event("c1", "good", "charge", t0, `{}`), globex)); err != nil {
		t.Fatalf("process: %v", err)
	}
	found := 0
	for _, dl := range store.deadLetters {
		if dl.OrgID == "globex" {
			found++
			if strings.Contains(dl.Message, "acme-contract-42") {
				t.Errorf("globex's dead letter quotes acme's row: %s", dl.Message)
			}
			if !strings.Contains(dl.Message, `{\"x\":1}`) && !strings.Contains(dl.Message, `{"x":1}`) {
				t.Errorf("globex's dead letter does not say why its own row failed: %s", dl.Message)
			}
		}
	}
	if found != 1 {
		t.Fatalf("%d dead letters of globex: %+v", found, store.deadLetters)
	}
}

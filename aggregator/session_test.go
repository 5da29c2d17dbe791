package aggregator

import (
	"context"
	"database/sql"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestSessionsPinAndBound: a partition always gets the same session, a
// process never has more sessions than its bound, and a call without a
// partition gets none (it runs on the pool).
func TestSessionsPinAndBound(t *testing.T) {
	s := newSessions(func() *sql.DB { t.Fatal("no session connects here"); return nil }, 16, prometheus.NewRegistry())
	ctx := context.Background()
	if s.forContext(ctx) != nil {
		t.Fatal("a call without a partition got a session")
	}
	first := map[int]*session{}
	for round := range 3 {
		for p := range 64 {
			sess := s.forContext(withPartition(ctx, p))
			if round == 0 {
				first[p] = sess
			} else if sess != first[p] {
				t.Fatalf("partition %d moved to another session", p)
			}
		}
	}
	distinct := map[*session]int{}
	for _, sess := range first {
		distinct[sess]++
	}
	if len(distinct) != 16 {
		t.Errorf("64 partitions on %d sessions, want 16", len(distinct))
	}
	for _, n := range distinct {
		if n != 4 {
			t.Errorf("a session serves %d partitions, want 4 each", n)
		}
	}
	var none *sessions // a store without sessions
	if none.forContext(withPartition(ctx, 1)) != nil || none.close() != nil {
		t.Error("nil sessions must pin nothing and close cleanly")
	}
}

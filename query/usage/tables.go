package usage

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// copies says which copies of readings hold every reading, so that a
// query may read them (sql.go): a copy is complete once its copy
// migrations are recorded in schema_migrations (0017 and its repeat 0022
// for readings_by_day, 0020 and 0023 for readings_by_customer). Until
// then it holds only the readings fed since its view was created and
// whatever part of the copy has landed, so the query reads readings: the
// same answer, slower. A query service that does not migrate (the
// Kubernetes manifests run migrations in a Job) may start while the Job
// copies, which takes minutes at 100 million readings, or after it
// failed.
type copies struct {
	byDay, byCustomer bool
}

// allCopies is what buildSQL assumes: a store migrated to the end.
var allCopies = copies{byDay: true, byCustomer: true}

// Every version that must be recorded before a copy is read.
var (
	byDayVersions      = []uint32{17, 22}
	byCustomerVersions = []uint32{20, 23}
)

// copyRecheck is how long the reader trusts a check that found a copy
// incomplete; once both are complete it never checks again.
const copyRecheck = 15 * time.Second

// copyCheckTimeout bounds one check of schema_migrations, so that the read
// that makes it is not held long by a busy or silent ClickHouse (the check
// runs while the migrate Job copies).
const copyCheckTimeout = 2 * time.Second

// copyState is the reader's view of the copies, checked at its first read
// and again every recheck until both are complete.
type copyState struct {
	mu       sync.Mutex
	ready    copies
	checked  time.Time // zero: never checked
	checking bool      // a read is checking; the others use ready meanwhile
	recheck  time.Duration
}

// get returns the copies that may be read, checking schema_migrations
// first when the last check is older than s.recheck and found a copy
// incomplete. One read checks at a time, within copyCheckTimeout and its
// own deadline; the reads meanwhile take what the last check found
// without waiting for this one (review 7b: they waited on a lock, past
// their own deadlines). A failed check keeps what the last one found
// (never a copy it did not see complete) and is observed, not returned:
// the query can still read readings.
func (s *copyState) get(ctx context.Context, conn driver.Conn, observer Observer, logger *slog.Logger) copies {
	s.mu.Lock()
	if s.ready == allCopies || s.checking || !s.checked.IsZero() && time.Since(s.checked) < s.recheck {
		ready := s.ready
		s.mu.Unlock()
		return ready
	}
	s.checking = true
	firstCheck := s.checked.IsZero()
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, copyCheckTimeout)
	defer cancel()
	start := time.Now()
	found, err := recordedVersions(ctx, conn)
	if observer != nil {
		observer.ObserveClickHouse("read_schema_migrations", start, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.checking = false
	s.checked = time.Now()
	if err != nil {
		logger.Warn("cannot read schema_migrations: usage reads readings, not its copies", "error", err)
		return s.ready
	}
	all := func(versions []uint32) bool {
		for _, v := range versions {
			if !found[v] {
				return false
			}
		}
		return true
	}
	ready := copies{byDay: all(byDayVersions), byCustomer: all(byCustomerVersions)}
	if firstCheck || ready != s.ready {
		logger.Info("copies of readings", "readings_by_day", ready.byDay, "readings_by_customer", ready.byCustomer,
			"note", "a copy is read once its copy migrations are recorded; until then usage reads readings")
	}
	s.ready = ready
	return ready
}

func recordedVersions(ctx context.Context, conn driver.Conn) (map[uint32]bool, error) {
	rows, err := conn.Query(ctx, "SELECT DISTINCT version FROM schema_migrations WHERE version IN (?, ?, ?, ?)",
		byDayVersions[0], byDayVersions[1], byCustomerVersions[0], byCustomerVersions[1])
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	found := map[uint32]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		found[v] = true
	}
	return found, rows.Err()
}

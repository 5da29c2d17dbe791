package aggregator

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Read-your-writes. The first-version lookup of a batch (step 3) must see
// every event the earlier batches of its partition inserted (step 4);
// otherwise a later version of a stored event is taken for a new one and
// counted. One ClickHouse server shows an insert to every connection once
// it returned. A pool of connections over several replicas, or a service
// behind a load balancer (ClickHouse Cloud), does not: a connection may
// reach a replica that has not fetched the part yet. So the lookups and
// inserts of a partition run on one session, a connection held for that
// partition (pinned), and reach one server.
//
// Pinning holds while the connection lives. A reconnection (after an
// error; the session never recycles a healthy connection) or a rebalance
// that moves the partition to another process may reach another replica;
// then only the consistency settings guarantee the lookup:
// -clickhouse.insert-quorum (insert_quorum, and select_sequential_consistency
// on the lookups) for Replicated tables, -clickhouse.sequential-consistency
// for ClickHouse Cloud. tally_aggregator_clickhouse_session_connects_total
// counts the connections sessions opened.
//
// Connections are bounded: a process opens at most as many sessions as
// its pool may open connections (-clickhouse.max-open-conns, 16 by
// default), so at most twice that number in all. The first partitions a
// process consumes get a session each; later ones share them in turn (64
// partitions on one process with 16 sessions: four per session, whose
// statements take turns). A partition keeps its session for the life of
// the process, across rebalances, so that its inserts and lookups never
// run on two sessions.

// sessionOpener is a ClickHouse pool that can open sessions;
// *chclient.Conn is one.
type sessionOpener interface {
	OpenSession() *sql.DB
	// WithSessionSettings adds the settings sessions send to a statement
	// on the pool.
	WithSessionSettings(ctx context.Context) context.Context
}

// partitionKey carries the partition whose batch a Store call serves.
type partitionKey struct{}

// withPartition marks ctx as serving a batch of partition: the Store runs
// its calls on that partition's session.
func withPartition(ctx context.Context, partition int) context.Context {
	return context.WithValue(ctx, partitionKey{}, partition)
}

func partitionOf(ctx context.Context) (int, bool) {
	p, ok := ctx.Value(partitionKey{}).(int)
	return p, ok
}

// sessions pins each partition to one of at most max sessions.
type sessions struct {
	open     func() *sql.DB
	max      int
	connects prometheus.Counter

	mu          sync.Mutex
	byPartition map[int]*session
	all         []*session
	closed      bool
}

func newSessions(open func() *sql.DB, maxSessions int, reg prometheus.Registerer) *sessions {
	return &sessions{
		open: open, max: max(maxSessions, 1), byPartition: map[int]*session{},
		connects: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "tally_aggregator_clickhouse_session_connects_total",
			Help: "ClickHouse connections opened by the sessions that pin each partition's lookups and inserts to one server; more than one per session means a reconnection.",
		}),
	}
}

// forContext returns the session of ctx's partition, or nil when ctx
// serves no partition (backfill, which reads and writes through the pool).
func (s *sessions) forContext(ctx context.Context) *session {
	p, ok := partitionOf(ctx)
	if s == nil || !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.byPartition[p]; ok {
		return sess
	}
	var sess *session
	if len(s.all) < s.max {
		sess = &session{owner: s, lock: make(chan struct{}, 1)}
		s.all = append(s.all, sess)
	} else {
		sess = s.all[len(s.byPartition)%s.max]
	}
	s.byPartition[p] = sess
	return sess
}

// close closes every session's connection; later calls fail.
func (s *sessions) close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	s.closed = true
	all := s.all
	s.mu.Unlock()
	var errs []error
	for _, sess := range all {
		sess.lock <- struct{}{}
		errs = append(errs, sess.discard())
		<-sess.lock
	}
	return errors.Join(errs...)
}

var errSessionsClosed = errors.New("clickhouse sessions are closed")

// session is one held connection, shared in turn by the partitions pinned
// to it.
type session struct {
	owner *sessions
	lock  chan struct{} // held for one statement with its rows

	db   *sql.DB   // nil until first use and after a failure
	conn *sql.Conn // the held connection
}

// do runs fn on the session's connection, connecting first if needed. A
// statement that fails leaves the connection in an unknown state, so it is
// closed; the next call (the Store's retry) reconnects.
func (s *session) do(ctx context.Context, fn func(*sql.Conn) error) error {
	select {
	case s.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.lock }()
	if s.conn == nil {
		s.owner.mu.Lock()
		closed := s.owner.closed
		s.owner.mu.Unlock()
		if closed {
			return errSessionsClosed
		}
		s.db = s.owner.open()
		conn, err := s.db.Conn(ctx)
		if err != nil {
			_ = s.discard()
			return err
		}
		s.conn = conn
		s.owner.connects.Inc()
	}
	if err := fn(s.conn); err != nil {
		_ = s.discard()
		return err
	}
	return nil
}

// discard closes the connection; the caller holds the lock.
func (s *session) discard() error {
	var errs []error
	if s.conn != nil {
		errs = append(errs, s.conn.Close()) // back to db, which closes it
		s.conn = nil
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
		s.db = nil
	}
	return errors.Join(errs...)
}

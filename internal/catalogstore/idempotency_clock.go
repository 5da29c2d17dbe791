package catalogstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Which of two racing saves under one Idempotency-Key wins, whatever the
// clocks of the processes that save.
//
// ClickHouse has neither transactions nor compare-and-set, so racing
// requests may both compute and save; every lookup returns the entry with
// the least version. For the racers to agree, no entry may appear before
// one a racer has already answered with. So:
//
//  1. The version is the ClickHouse server's clock, read just before the
//     insert: its second (now(); ClickHouse 18.16 has no sub-second clock,
//     now64 came in 20.x) times 10^9, plus the nanoseconds within its
//     second of the saving process's clock. The seconds order saves made
//     in different seconds whatever the processes' clocks say; the
//     process's nanoseconds only order saves stamped in the same server
//     second, which step 2 makes every racer see.
//  2. SaveIdempotent returns only after the server's clock has passed the
//     entry's second, and settleMargin more. A save whose insert commits
//     within settleMargin of reading the server's clock is then visible to
//     the lookup that follows if it sorts first: it was stamped in the
//     same second or an earlier one. Any save stamped later sorts after.
//     This costs the first request under a key up to a second plus
//     settleMargin (half a second plus settleMargin on average).
//
// The window that remains, precisely: a racer can have answered with an
// entry that later lookups no longer return only if
//   - another save under the same key took more than settleMargin from
//     reading the server's clock to its insert committing (a paused
//     process, a slow insert) and its entry sorts before the answered
//     one. That save sees the answered entry when it checks after its
//     insert, and returns ErrSlowSave, so every such case is reported to
//     the API, which logs it; or
//   - the ClickHouse server's clock stepped backwards between the two
//     saves, or the saves went to different ClickHouse servers whose
//     clocks disagree (each save reads the clock of the server it is
//     connected to; Tally runs one).
//
// A placeholder saved before computing (so that the loser replays the
// winner) would save the duplicate work but not narrow this window: the
// placeholders race exactly as the entries do, and a winner that crashes
// leaves a placeholder that blocks the key until it expires. The APIs that
// use these entries only read, so computing twice is harmless.

// settleMargin is how long after its entry's server second a save waits
// before its lookup, and so how long a racing save may take from reading
// the server's clock to its insert committing.
const settleMargin = 250 * time.Millisecond

// clockPoll is how often a save asks the server whether its second is
// over.
const clockPoll = 50 * time.Millisecond

// ErrSlowSave means an entry was saved but took longer than settleMargin
// while another entry under its key sorts after it: a request that raced
// with this one may have been answered with that other entry, which
// lookups no longer return.
var ErrSlowSave = errors.New("the save took longer than a racing request waits for it; " +
	"a racing request may have been answered with another response")

// testHookBeforeIdempotentInsert, when set by a test, runs between
// reading the server's clock and inserting: a test delays a save there.
var testHookBeforeIdempotentInsert func()

// idempotentStamp is when an entry was saved, by the server's clock, and
// by the saving process's monotonic clock.
type idempotentStamp struct {
	version   uint64
	createdAt time.Time // the server's second, UTC
	second    uint32    // the server's second, Unix
	began     time.Time // before the server's clock was read
	secondEnd time.Time // by when the server's second is surely over
}

// stampIdempotent reads the server's clock for an entry about to be
// inserted.
func (s *Store) stampIdempotent(ctx context.Context) (idempotentStamp, error) {
	st := idempotentStamp{began: time.Now()}
	second, err := s.serverSecond(ctx)
	if err != nil {
		return st, err
	}
	// The server read its clock before answering, so its second ends
	// within a second of now.
	st.secondEnd = time.Now().Add(time.Second)
	st.second = second
	st.createdAt = time.Unix(int64(second), 0).UTC()
	st.version = uint64(second)*uint64(time.Second) + uint64(s.now().Nanosecond())
	return st, nil
}

// settleIdempotent runs after the entry stamped st was inserted under key:
// it reports a slow save that another entry sorts after (ErrSlowSave),
// then waits until every entry that can sort before st's is visible.
func (s *Store) settleIdempotent(ctx context.Context, orgID, scope, key string, st idempotentStamp) error {
	if took := time.Since(st.began); took > settleMargin {
		// Entries, not rows: a retried insert (SaveIdempotent) may have
		// stored this save's entry twice, and its copy is no racer.
		var n uint64
		if err := s.conn.QueryRow(ctx, `SELECT uniqExact(version, request_hash, status, body) FROM `+idempotencyKeyTable+`
			WHERE org_id = ? AND scope = ? AND key = ? AND created_at >= toDateTime(?) AND version >= ?`,
			orgID, scope, key, st.second, st.version).Scan(&n); err != nil {
			return fmt.Errorf("check a slow save: %w", err)
		}
		if n > 1 {
			return fmt.Errorf("%w (took %v, more than %v)", ErrSlowSave, took.Round(time.Millisecond), settleMargin)
		}
	}
	for time.Now().Before(st.secondEnd) {
		now, err := s.serverSecond(ctx)
		if err != nil {
			return err
		}
		if now > st.second {
			break
		}
		if err := sleep(ctx, min(clockPoll, time.Until(st.secondEnd))); err != nil {
			return err
		}
	}
	return sleep(ctx, settleMargin)
}

// serverSecond reads the ClickHouse server's clock, in Unix seconds.
func (s *Store) serverSecond(ctx context.Context) (uint32, error) {
	var second uint32
	if err := s.conn.QueryRow(ctx, "SELECT toUInt32(now())").Scan(&second); err != nil {
		return 0, fmt.Errorf("read the ClickHouse server's clock: %w", err)
	}
	return second, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

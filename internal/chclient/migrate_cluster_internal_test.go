package chclient

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// failingConn answers every Exec with ClickHouse's exception code.
type failingConn struct {
	driver.Conn
	code  int32
	calls atomic.Int64
}

func (c *failingConn) Exec(context.Context, string, ...any) error {
	c.calls.Add(1)
	return &clickhouse.Exception{Code: c.code, Name: "DB::Exception", Message: "failing on purpose"}
}

// TestExecRetryingBoundsWhatTheStatementMayCause (review 8b G6): a copy
// statement refused for a reason that may be its own (241 memory limit,
// 159 timeout: one month too large for the server's per-query limits)
// fails after copyRetries attempts with that error, instead of being
// retried until the context ends, which for `tally migrate` without a
// deadline is never; a quorum or replica answer (286) is retried until the
// context ends, which then returns with the last error too.
func TestExecRetryingBoundsWhatTheStatementMayCause(t *testing.T) {
	defer func(n int) { copyRetries = n }(copyRetries)
	copyRetries = 3
	logger := slog.New(slog.DiscardHandler)

	conn := &failingConn{code: 241}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := execRetrying(ctx, conn, "INSERT INTO t SELECT 1", logger)
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != 241 || ctx.Err() != nil || conn.calls.Load() != 3 {
		t.Errorf("code 241 on every attempt: %d attempts, %v (context %v); want 3 attempts and the 241", conn.calls.Load(), err, ctx.Err())
	}

	conn = &failingConn{code: 286}
	ctx, cancel = context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	err = execRetrying(ctx, conn, "INSERT INTO t SELECT 1", logger)
	if !errors.As(err, &ex) || ex.Code != 286 || !errors.Is(err, context.DeadlineExceeded) || conn.calls.Load() <= 3 {
		t.Errorf("code 286 on every attempt: %d attempts, %v; want retries past the bound until the context ends, with the 286 and the deadline", conn.calls.Load(), err)
	}
}

package chclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
)

func TestClassify(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	live := context.Background()
	for _, tt := range []struct {
		name string
		ctx  context.Context
		err  error
		want Failure
	}{
		{"client gone", canceled, fmt.Errorf("read: %w", context.Canceled), FailureCanceled},
		{"canceled, but not by the client", live, context.Canceled, FailureInternal},
		{"deadline", live, fmt.Errorf("query: %w", context.DeadlineExceeded), FailureTimeout},
		{"busy", live, &clickhouse.Exception{Code: 202}, FailureUnavailable},
		{"server-side timeout", live, fmt.Errorf("x: %w", &clickhouse.Exception{Code: 159}), FailureUnavailable},
		{"a query ClickHouse refuses", live, &clickhouse.Exception{Code: 62}, FailureInternal},
		{"connection refused", live, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, FailureUnavailable},
		{"connection lost", live, fmt.Errorf("read: %w", io.ErrUnexpectedEOF), FailureUnavailable},
		{"reset", live, syscall.ECONNRESET, FailureUnavailable},
		{"pool exhausted", live, clickhouse.ErrAcquireConnTimeout, FailureUnavailable},
		{"a bug of ours", live, errors.New("stored meter is invalid"), FailureInternal},
	} {
		if got := Classify(tt.ctx, tt.err); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestClusterErrorsAreTransient: what a cluster answers while a replica or
// ZooKeeper is down, or while a quorum insert waits for the previous one,
// is retried, and never taken for bad rows.
func TestClusterErrorsAreTransient(t *testing.T) {
	for _, code := range []int32{209, 210, 225, 242, 279, 285, 286, 289, 319, 369, 999} {
		err := fmt.Errorf("insert: %w", &clickhouse.Exception{Code: code})
		if got := Classify(context.Background(), err); got != FailureUnavailable {
			t.Errorf("code %d: %d, want FailureUnavailable", code, got)
		}
		if IsDataError(err) {
			t.Errorf("code %d is taken for a data error", code)
		}
	}
}

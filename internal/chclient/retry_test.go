package chclient

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

func TestRetryTransientRetriesUntilSuccess(t *testing.T) {
	calls := 0
	err := RetryTransient(context.Background(), func() error {
		calls++
		if calls < 3 {
			return fmt.Errorf("write meters: %w", &clickhouse.Exception{Code: 286})
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("RetryTransient: %v after %d calls, want nil after 3", err, calls)
	}
}

func TestRetryTransientDoesNotRetryOtherErrors(t *testing.T) {
	for _, failure := range []error{
		&clickhouse.Exception{Code: 62}, // a query ClickHouse refuses
		errors.New("stored meter is invalid"),
		fmt.Errorf("query: %w", context.DeadlineExceeded),
	} {
		calls := 0
		err := RetryTransient(context.Background(), func() error {
			calls++
			return failure
		})
		if !errors.Is(err, failure) || calls != 1 {
			t.Errorf("%v: %v after %d calls, want it after 1", failure, err, calls)
		}
	}
}

// TestRetryTransientStopsWhenContextIsDone: a request's context bounds the
// retries; its end is in the error (Classify: timeout or client gone),
// with the last failure.
func TestRetryTransientStopsWhenContextIsDone(t *testing.T) {
	busy := &clickhouse.Exception{Code: 286}

	canceled, cancel := context.WithCancel(context.Background())
	calls := 0
	err := RetryTransient(canceled, func() error {
		calls++
		cancel() // the client goes away during the first attempt
		return busy
	})
	if calls != 1 || !errors.Is(err, context.Canceled) || !errors.Is(err, busy) {
		t.Errorf("canceled during the first attempt: %v after %d calls, want the failure and context.Canceled after 1", err, calls)
	}
	if got := Classify(canceled, err); got != FailureCanceled {
		t.Errorf("Classify: %d, want FailureCanceled", got)
	}

	// A deadline that passes during the third attempt (it waits for it).
	ctx, stop := context.WithTimeout(context.Background(), time.Second)
	defer stop()
	calls = 0
	err = RetryTransient(ctx, func() error {
		calls++
		if calls == 3 {
			<-ctx.Done()
		}
		return busy
	})
	if calls != 3 || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, busy) {
		t.Errorf("deadline during the third attempt: %v after %d calls, want the failure and context.DeadlineExceeded after 3", err, calls)
	}
	if got := Classify(ctx, err); got != FailureTimeout {
		t.Errorf("Classify: %d, want FailureTimeout", got)
	}
}

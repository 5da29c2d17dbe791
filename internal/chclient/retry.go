package chclient

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Retry bounds of RetryTransient.
const (
	retryInitialInterval = 50 * time.Millisecond
	retryMaxInterval     = 2 * time.Second
	// retryMaxElapsed bounds the retries of a call whose context has no
	// deadline (one with a deadline is retried until it): a replica down
	// or ZooKeeper lost fails it then rather than never.
	retryMaxElapsed = 30 * time.Second
)

// RetryTransient runs op, and runs it again after each transient failure
// (Classify(ctx, err) is FailureUnavailable), with jittered exponential
// backoff, until op succeeds, fails otherwise, or ctx is done; a ctx
// without a deadline is retried for retryMaxElapsed at most. It returns
// op's last error, wrapping ctx's error when ctx ended the retries (so
// Classify says FailureTimeout or FailureCanceled). op must be safe to
// run again, and must make everything it sends anew on each run: a
// clickhouse-go batch is sent once, so op prepares its batch itself.
//
// On a cluster (Config.Cluster) these failures are common and short: on
// ClickHouse 18.16 a quorum insert into a table is refused at once (286)
// while another one, on any shard, waits for its quorum, so two writes
// that overlap fail one of them; a replica restarting (285, 242) or a
// ZooKeeper hiccup (999) fail a write for a while. One server returns none
// of them; there a retry follows a lost connection or a busy server.
//
// A failed insert may have stored its rows anyway: a 319 (the quorum's
// outcome is unknown) leaves them committed on one replica, where they
// become readable once the others fetch them, and a synchronous
// Distributed insert that fails on one shard has written the others
// (even on one server, a connection lost after the server committed
// looks the same). So op is run again only for rows whose second copy
// changes nothing: the callers' rows are identical on every run and
// fold, or are read so that a duplicate is invisible.
func RetryTransient(ctx context.Context, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = retryInitialInterval
	b.MaxInterval = retryMaxInterval
	b.MaxElapsedTime = 0
	if _, ok := ctx.Deadline(); !ok {
		b.MaxElapsedTime = retryMaxElapsed
	}
	b.Reset()
	for {
		err := op()
		if err == nil || Classify(ctx, err) != FailureUnavailable {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (not retried: %w)", err, ctx.Err())
		}
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			return fmt.Errorf("%w (retried for %v)", err, retryMaxElapsed)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (retries ended: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

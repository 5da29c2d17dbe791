package client

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// RetryPolicy says how an event request is retried after a 429, a 503 (a
// 502 or 504 of a proxy) or a network error (a timeout included). Waits grow exponentially from
// InitialInterval to MaxInterval, each randomized by ±Jitter (a fraction)
// so that many clients do not retry in step, and never shorter than the
// answer's Retry-After (one that would pass MaxElapsed ends retrying at
// once). Retrying stops after MaxAttempts attempts, after
// MaxElapsed, or when the context ends, whichever is first.
type RetryPolicy struct {
	InitialInterval time.Duration
	MaxInterval     time.Duration
	Multiplier      float64
	Jitter          float64
	MaxAttempts     int           // 0: no limit but MaxElapsed
	MaxElapsed      time.Duration // 0: no limit but MaxAttempts
	// Notify, when set, is called before each wait with why the attempt
	// failed (an *Error, or the network error) and how long the wait is.
	Notify func(err error, wait time.Duration)
}

// DefaultRetryPolicy waits 200 ms, then about 1.5 times longer each time up
// to 10 s, for at most 2 minutes.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		InitialInterval: 200 * time.Millisecond,
		MaxInterval:     10 * time.Second,
		Multiplier:      1.5,
		Jitter:          0.5,
		MaxElapsed:      2 * time.Minute,
	}
}

// NoRetry sends each request once.
func NoRetry() RetryPolicy { return RetryPolicy{MaxAttempts: 1} }

func (p RetryPolicy) backOff() backoff.BackOff {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.InitialInterval),
		backoff.WithMaxInterval(p.MaxInterval),
		backoff.WithMultiplier(p.Multiplier),
		backoff.WithRandomizationFactor(p.Jitter),
		backoff.WithMaxElapsedTime(p.MaxElapsed),
	)
	if p.InitialInterval <= 0 {
		b.InitialInterval = 200 * time.Millisecond
	}
	if p.Multiplier < 1 {
		b.Multiplier = 1
	}
	b.Reset()
	var bo backoff.BackOff = b
	if p.MaxAttempts > 0 {
		bo = backoff.WithMaxRetries(bo, uint64(p.MaxAttempts-1))
	}
	return bo
}

// retryable reports whether an answer may be retried with the same body:
// only when ingest took nothing (429, and 503 overloaded) or may have taken
// the events without acknowledging them (503 unavailable), where sending
// them again counts each once. A 502 or 504 comes from a proxy in front of
// ingest that lost its answer: like a network error, the events may or may
// not have been taken, and sending them again is as safe.
func retryable(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// send sends r until it gets an answer that is not retried, and returns
// it with the number of attempts. A network error is retried; so is an
// attempt's timeout, unless ctx itself has ended. unsure reports whether
// an attempt may have been served without its answer reaching us (a
// network error after the request may have gone out, a 502, a 503 other
// than overloaded, a 504): then a failed send may hide recorded events.
func (c *Client) send(ctx context.Context, r request) (resp *response, attempts int, unsure bool, err error) {
	bo := c.retry.backOff()
	start := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return nil, attempts, unsure, err // not sent this time
		}
		attempts++
		resp, err = c.attempt(ctx, r)
		var wait time.Duration
		var permanent *permanentError
		switch {
		case errors.As(err, &permanent):
			return nil, attempts, unsure, permanent.err
		case err != nil:
			unsure = unsure || mayHaveBeenServed(err)
			if ctx.Err() != nil {
				return nil, attempts, unsure, ctx.Err()
			}
			// Connection refused or reset, a timeout of this attempt: the
			// request may or may not have been served; the same body is
			// safe to send again.
		case retryable(resp.status):
			unsure = unsure || resp.status != http.StatusTooManyRequests && apiError(resp).Code != "overloaded"
			wait = retryAfter(resp.header)
		default:
			return resp, attempts, unsure, nil
		}
		next := bo.NextBackOff()
		// A Retry-After beyond what is left of MaxElapsed (a proxy's hour,
		// a value too large for a Duration) ends retrying now rather than
		// sleeping past the budget.
		overBudget := c.retry.MaxElapsed > 0 && wait > c.retry.MaxElapsed-time.Since(start)
		if next == backoff.Stop || overBudget {
			if err != nil {
				return nil, attempts, unsure, err
			}
			return resp, attempts, unsure, nil
		}
		if wait < next {
			wait = next
		}
		if err == nil {
			err = apiError(resp)
		}
		if c.retry.Notify != nil {
			c.retry.Notify(err, wait)
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return nil, attempts, unsure, errors.Join(serr, err)
		}
	}
}

// mayHaveBeenServed reports whether a failed attempt may have reached the
// server: all but a refused connection and a failed name lookup.
func mayHaveBeenServed(err error) bool {
	var dnsErr *net.DNSError
	return !errors.Is(err, syscall.ECONNREFUSED) && !errors.As(err, &dnsErr)
}

// retryAfter reads a Retry-After header in seconds or as an HTTP date.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	s, err := strconv.ParseUint(v, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) || (err == nil && s > uint64(math.MaxInt64/time.Second)):
		return math.MaxInt64 // later than any retry budget, not an overflow
	case err == nil:
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

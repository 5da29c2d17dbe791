package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/tally-oss/tally/internal/httpapi"
)

// Ingest's load limits (issue 6, defect 8). Each is answered at once, with
// Retry-After, rather than queued: a request waiting for a slot holds its
// connection and its memory as much as one being served.
//
//   - ingest.max-inflight-requests bounds the requests served at once on
//     the write routes (503, code overloaded). Requests wait for Kafka
//     (publish) while they hold a slot, at most ingest.produce-timeout
//     (publisher.go), so a slot is free again within that time.
//   - ingest.max-inflight-bytes bounds the request bodies held at once,
//     counted after decompression as they are read (503, code overloaded).
//     A request's memory is a small multiple of its body.
//   - ingest.rate-limit-events and ingest.rate-limit-burst bound each
//     organization's events per second (a token bucket; 429, code
//     rate_limited, naming the limit). Off by default.

// Error codes of the limits, besides httpapi's.
const (
	codeOverloaded  = "overloaded"
	codeRateLimited = "rate_limited"
)

// Values of the limit label of tally_ingest_requests_limited_total.
const (
	limitInflightRequests = "inflight_requests"
	limitInflightBytes    = "inflight_bytes"
	limitRate             = "rate"
)

// budgetChunk is how many body bytes a request reserves at a time.
const budgetChunk = 64 << 10

// inflight counts the requests and body bytes being served.
type inflight struct {
	maxRequests, maxBytes int64
	requests, bytes       atomic.Int64
	metrics               *metrics
}

type reservationKey struct{}

// reservation is one request's share of the byte budget.
type reservation struct {
	limits   *inflight
	reserved int64
}

// wrap serves next only while fewer than maxRequests requests are being
// served, and gives the request a reservation of the byte budget, which
// readBody grows as it reads.
func (l *inflight) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := l.requests.Add(1); n > l.maxRequests {
			l.requests.Add(-1)
			l.metrics.requestsLimited.WithLabelValues(limitInflightRequests).Inc()
			w.Header().Set("Retry-After", "1")
			httpapi.WriteError(w, http.StatusServiceUnavailable, codeOverloaded,
				fmt.Sprintf("ingest is serving its limit of %d requests at once (ingest.max-inflight-requests); retry in a second", l.maxRequests))
			return
		}
		l.metrics.inflightRequests.Inc()
		res := &reservation{limits: l}
		defer func() {
			l.bytes.Add(-res.reserved)
			l.metrics.inflightBytes.Sub(float64(res.reserved))
			l.requests.Add(-1)
			l.metrics.inflightRequests.Dec()
		}()
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), reservationKey{}, res)))
	})
}

// errOverBudget is a body read past the byte budget.
var errOverBudget = errors.New("in-flight byte budget exhausted")

// grow reserves room for n more bytes beyond used.
func (res *reservation) grow(used, n int64) error {
	if used+n <= res.reserved {
		return nil
	}
	want := max(used+n-res.reserved, budgetChunk)
	l := res.limits
	if l.bytes.Add(want) > l.maxBytes {
		l.bytes.Add(-want)
		return errOverBudget
	}
	res.reserved += want
	l.metrics.inflightBytes.Add(float64(want))
	return nil
}

// budgetReader counts what is read against a reservation.
type budgetReader struct {
	r    io.Reader
	res  *reservation
	used int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	// Reserve before reading, so that the buffer the bytes go into is
	// within the budget; what a short read leaves over stays reserved.
	if err := b.res.grow(b.used, int64(len(p))); err != nil {
		if len(p) <= budgetChunk {
			return 0, err
		}
		p = p[:budgetChunk] // a large buffer: try a chunk of it
		if err := b.res.grow(b.used, int64(len(p))); err != nil {
			return 0, err
		}
	}
	n, err := b.r.Read(p)
	b.used += int64(n)
	return n, err
}

// overloaded is the request error of a body past the byte budget.
func overloaded(maxBytes int64) *requestError {
	return &requestError{http.StatusServiceUnavailable, codeOverloaded, requestOverloaded,
		fmt.Sprintf("ingest holds its limit of %d bytes of request bodies at once (ingest.max-inflight-bytes); retry in a second", maxBytes)}
}

// rateLimits are the per-organization token buckets of
// ingest.rate-limit-events; nil when the limit is off. Organizations are
// the API keys', so the map stays small.
type rateLimits struct {
	perSecond float64
	burst     int

	mu   sync.Mutex
	orgs map[string]*rate.Limiter
}

func newRateLimits(perSecond float64, burst int) *rateLimits {
	if perSecond <= 0 {
		return nil
	}
	return &rateLimits{perSecond: perSecond, burst: burst, orgs: map[string]*rate.Limiter{}}
}

// rateLimited is accept's error for a request over its organization's
// rate; every route answers it 429 with Retry-After.
type rateLimited struct {
	org        string
	events     int
	perSecond  float64
	burst      int
	retryAfter time.Duration
}

func (e *rateLimited) Error() string {
	return fmt.Sprintf("organization %s is over its limit of %s events per second (bursts of %d; ingest.rate-limit-events, ingest.rate-limit-burst): "+
		"these %d events would pass in %s; retry after %d s", e.org, strconv.FormatFloat(e.perSecond, 'f', -1, 64), e.burst, e.events,
		e.retryAfter.Round(time.Millisecond), e.retryAfterSeconds())
}

func (e *rateLimited) retryAfterSeconds() int {
	return max(1, int(math.Ceil(e.retryAfter.Seconds())))
}

// details is the JSON the 429 carries besides the message.
func (e *rateLimited) details() any {
	return map[string]any{
		"limit":               "ingest.rate-limit-events",
		"events_per_second":   e.perSecond,
		"burst":               e.burst,
		"events":              e.events,
		"retry_after_seconds": e.retryAfterSeconds(),
	}
}

// take takes n events from org's bucket, or says how long until they
// would be there; a refused request takes nothing.
func (rl *rateLimits) take(org string, n int, now time.Time) *rateLimited {
	if rl == nil {
		return nil
	}
	rl.mu.Lock()
	lim, ok := rl.orgs[org]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(rl.perSecond), rl.burst)
		rl.orgs[org] = lim
	}
	rl.mu.Unlock()
	res := lim.ReserveN(now, n)
	if !res.OK() { // more events than the burst: Validate keeps it from happening
		return &rateLimited{org: org, events: n, perSecond: rl.perSecond, burst: rl.burst, retryAfter: time.Second}
	}
	if delay := res.DelayFrom(now); delay > 0 {
		res.CancelAt(now)
		return &rateLimited{org: org, events: n, perSecond: rl.perSecond, burst: rl.burst, retryAfter: delay}
	}
	return nil
}

// writeRateLimited answers a rateLimited in Tally's error format.
func writeRateLimited(w http.ResponseWriter, e *rateLimited) {
	w.Header().Set("Retry-After", strconv.Itoa(e.retryAfterSeconds()))
	httpapi.WriteErrorDetails(w, http.StatusTooManyRequests, codeRateLimited, e.Error(), e.details())
}

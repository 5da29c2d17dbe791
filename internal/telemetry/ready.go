package telemetry

import (
	"context"
	"maps"
	"net/http"
	"sync"
	"time"
)

// ReadinessCacheTTL is how long a /readyz result is reused. /readyz is
// unauthenticated on a public port and its checks query ClickHouse and
// Kafka, so a flood of calls must not become a flood of queries: the
// checks run at most once per TTL, and callers that arrive while they run
// wait for that run instead of starting their own. A state change shows
// on /readyz at most this much (plus the checks' own time) later, well
// within a kubelet's probe period.
const ReadinessCacheTTL = time.Second

// readiness runs a server's checks and caches the result.
type readiness struct {
	now func() time.Time

	mu       sync.Mutex
	result   *readyResult // the last completed run; nil before the first
	at       time.Time    // when result was completed
	inflight *readyRun    // the run in progress, or nil
	gen      uint64       // incremented by forget: a run started before is not cached
}

// readyRun is one run of the checks; res is set when done is closed.
type readyRun struct {
	done chan struct{}
	res  *readyResult
}

// readyResult is the outcome of one run of the checks: per check "ok" or
// the error text.
type readyResult struct {
	failed bool
	checks map[string]string
}

// forget drops the cached result, so that a check added later runs on the
// next call rather than a TTL later.
func (r *readiness) forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.result = nil
	r.gen++
}

// get returns a result at most ReadinessCacheTTL old: the cached one, the
// one of the run in flight, or a new run's. run is what a new run calls.
// A caller whose ctx ends while it waits gets ctx's error; the run goes on
// for the others.
func (r *readiness) get(ctx context.Context, run func() *readyResult) (*readyResult, error) {
	r.mu.Lock()
	if r.result != nil && r.now().Sub(r.at) < ReadinessCacheTTL {
		res := r.result
		r.mu.Unlock()
		return res, nil
	}
	current := r.inflight
	if current == nil {
		current = &readyRun{done: make(chan struct{})}
		r.inflight = current
		gen := r.gen
		go func() {
			res := run()
			r.mu.Lock()
			if r.gen == gen {
				r.result, r.at = res, r.now()
			}
			r.inflight = nil
			current.res = res
			r.mu.Unlock()
			close(current.done)
		}()
	}
	r.mu.Unlock()
	select {
	case <-current.done:
		return current.res, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Readiness returns what /readyz answers, from the same cached run of the
// checks: whether every check passed and each check's "ok" or error text
// (for the component's own use, such as a status page that says only
// which checks fail). err is ctx's when it ended before the run did.
func (s *Server) Readiness(ctx context.Context) (ready bool, checks map[string]string, err error) {
	res, err := s.ready.get(ctx, s.runChecks)
	if err != nil {
		return false, nil, err
	}
	return !res.failed, maps.Clone(res.checks), nil
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	res, err := s.ready.get(r.Context(), s.runChecks)
	switch {
	case err != nil:
		writeStatus(w, http.StatusServiceUnavailable, "not ready", map[string]string{"request": err.Error()})
	case res.failed:
		writeStatus(w, http.StatusServiceUnavailable, "not ready", res.checks)
	default:
		writeStatus(w, http.StatusOK, "ready", res.checks)
	}
}

// runChecks runs every check in parallel, each bounded by CheckTimeout. The
// context is not any caller's: callers share the run, and one that goes
// away must not fail it for the rest.
func (s *Server) runChecks() *readyResult {
	s.mu.Lock()
	checks := make(map[string]Check, len(s.checks))
	for k, v := range s.checks {
		checks[k] = v
	}
	s.mu.Unlock()
	res := &readyResult{checks: make(map[string]string, len(checks))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, check := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), CheckTimeout)
			defer cancel()
			err := check(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.failed = true
				res.checks[name] = err.Error()
				return
			}
			res.checks[name] = "ok"
		}()
	}
	wg.Wait()
	return res
}

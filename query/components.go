package query

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// The status reports, besides ClickHouse, the readiness of the pipeline's
// other components (ingest, the aggregator): the query service GETs each
// one's /readyz. The status is served to every organization's key, so what
// it passes on is only each check's name and whether it is "ok" or
// "failing", or one fixed phrase when the component gave no readiness
// answer; never a component's error text, host name, address or URL
// (they are logged instead).
const (
	// ProbeTimeout bounds one probe of a component.
	ProbeTimeout = time.Second
	// ProbeCacheTTL is how long a round of probes is reused: a burst of
	// status requests (every open console refreshing) probes each
	// component at most once per TTL, and requests that arrive while a
	// round runs wait for it instead of starting their own.
	ProbeCacheTTL = time.Second
	// MaxProbeBytes bounds the body read from one probe; a longer one is
	// a bad answer.
	MaxProbeBytes = 64 << 10
	// MaxStatusComponents bounds -query.status-components.
	MaxStatusComponents = 16
	// SelfComponent is the name the query service reports itself under.
	SelfComponent = "query"
)

// What a component that gave no readiness answer is reported as.
const (
	ProbeUnreachable = "unreachable" // no connection (refused, no such host)
	ProbeTimedOut    = "timed out"   // no whole answer within ProbeTimeout
	ProbeBadAnswer   = "bad answer"  // an answer that is not a /readyz report
)

// Check results as the status shows them.
const (
	CheckOK      = "ok"
	CheckFailing = "failing"
)

var (
	componentNamePattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	// checkNamePattern is what a check name passed on may look like
	// (Tally's are "kafka", "clickhouse", "partitions", ...): anything
	// else in a component's answer is not shown, and the answer is bad.
	checkNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
)

// maxChecks bounds the checks one component's answer may have.
const maxChecks = 32

// StatusComponent is a component whose readiness the status reports: its
// name and the URL of its /readyz.
type StatusComponent struct {
	Name string
	URL  string
}

// StatusComponents is the value of -query.status-components:
// "name=URL,..." in the order the status lists them.
type StatusComponents []StatusComponent

func (c *StatusComponents) String() string {
	if c == nil {
		return ""
	}
	parts := make([]string, len(*c))
	for i, sc := range *c {
		parts[i] = sc.Name + "=" + sc.URL
	}
	return strings.Join(parts, ",")
}

// Set replaces the list with the components of s ("" clears it),
// refusing a malformed one.
func (c *StatusComponents) Set(s string) error {
	var list StatusComponents
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		name, u, ok := strings.Cut(part, "=")
		if !ok {
			return fmt.Errorf("%q: want name=URL", part)
		}
		list = append(list, StatusComponent{Name: strings.TrimSpace(name), URL: strings.TrimSpace(u)})
	}
	if err := list.validate(); err != nil {
		return err
	}
	*c = list
	return nil
}

// validate reports every problem with the list.
func (c StatusComponents) validate() error {
	var errs []error
	if len(c) > MaxStatusComponents {
		errs = append(errs, fmt.Errorf("%d components, at most %d", len(c), MaxStatusComponents))
	}
	seen := map[string]bool{SelfComponent: true}
	for _, sc := range c {
		switch {
		case !componentNamePattern.MatchString(sc.Name):
			errs = append(errs, fmt.Errorf("component name %q: want lower case letters, digits, _ and - (at most 32, a letter first)", sc.Name))
		case sc.Name == SelfComponent:
			errs = append(errs, fmt.Errorf("component name %q: the query service reports itself under it", sc.Name))
		case seen[sc.Name]:
			errs = append(errs, fmt.Errorf("component name %q: given twice", sc.Name))
		}
		seen[sc.Name] = true
		u, err := url.Parse(sc.URL)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", sc.Name, err))
		case u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Fragment != "":
			errs = append(errs, fmt.Errorf("%s: %q: want an http:// or https:// URL of its /readyz", sc.Name, sc.URL))
		}
	}
	return errors.Join(errs...)
}

// componentStatus is one component in the status: ready, or which of its
// checks fail, or why it gave no answer.
type componentStatus struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
	// Checks maps each check the component reported to CheckOK or
	// CheckFailing; empty when it gave no answer.
	Checks map[string]string `json:"checks"`
	// Error is "" when the component answered, else ProbeUnreachable,
	// ProbeTimedOut or ProbeBadAnswer.
	Error string `json:"error"`
}

// prober probes the configured components, a round at most once per
// ProbeCacheTTL.
type prober struct {
	components StatusComponents
	client     *http.Client
	logger     *slog.Logger
	now        func() time.Time

	mu       sync.Mutex
	result   []componentStatus // the last completed round; nil before the first
	at       time.Time         // when result was completed
	inflight chan struct{}     // closed when the round in progress ends
	outcome  map[string]string // the last outcome logged per component
}

func newProber(components StatusComponents, logger *slog.Logger) *prober {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Components are reached directly, never through a proxy of the
	// environment, and their headers are small.
	t.Proxy = nil
	t.MaxResponseHeaderBytes = 16 << 10
	t.MaxIdleConnsPerHost = 1
	return &prober{
		components: components,
		client: &http.Client{
			Transport: t,
			// A redirect is not a readiness answer.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		logger:  logger,
		now:     time.Now,
		outcome: map[string]string{},
	}
}

// get returns the components' status at most ProbeCacheTTL old: the
// cached round, the one in flight, or a new one. A round is not any
// caller's (callers share it), so it runs on its own timeouts; a caller
// whose ctx ends first gets every component as timed out.
func (p *prober) get(ctx context.Context) []componentStatus {
	if len(p.components) == 0 {
		return nil
	}
	p.mu.Lock()
	if p.result != nil && p.now().Sub(p.at) < ProbeCacheTTL {
		res := p.result
		p.mu.Unlock()
		return res
	}
	done := p.inflight
	if done == nil {
		done = make(chan struct{})
		p.inflight = done
		go func() {
			res := p.round()
			p.mu.Lock()
			p.result, p.at, p.inflight = res, p.now(), nil
			p.mu.Unlock()
			close(done)
		}()
	}
	p.mu.Unlock()
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.result
	case <-ctx.Done():
		res := make([]componentStatus, len(p.components))
		for i, c := range p.components {
			res[i] = componentStatus{Name: c.Name, Checks: map[string]string{}, Error: ProbeTimedOut}
		}
		return res
	}
}

// round probes every component at once.
func (p *prober) round() []componentStatus {
	res := make([]componentStatus, len(p.components))
	var wg sync.WaitGroup
	for i, c := range p.components {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), ProbeTimeout)
			defer cancel()
			var detail error
			res[i], detail = p.probe(ctx, c)
			p.log(res[i], detail)
		})
	}
	wg.Wait()
	return res
}

// readyzAnswer is the body of a component's /readyz (telemetry.Server).
type readyzAnswer struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// probe GETs one component's /readyz. detail is what went wrong, for the
// log only.
func (p *prober) probe(ctx context.Context, c StatusComponent) (componentStatus, error) {
	st := componentStatus{Name: c.Name, Checks: map[string]string{}}
	fail := func(phrase string, err error) (componentStatus, error) {
		st.Error = phrase
		return st, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return fail(ProbeBadAnswer, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return fail(transportPhrase(ctx, err), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxProbeBytes+1))
	if err != nil {
		return fail(transportPhrase(ctx, err), fmt.Errorf("read the answer: %w", err))
	}
	if len(body) > MaxProbeBytes {
		return fail(ProbeBadAnswer, fmt.Errorf("answer longer than %d bytes", MaxProbeBytes))
	}
	var ans readyzAnswer
	if err := json.Unmarshal(body, &ans); err != nil {
		return fail(ProbeBadAnswer, fmt.Errorf("status %d, not a readiness report: %w", resp.StatusCode, err))
	}
	switch {
	case resp.StatusCode == http.StatusOK && ans.Status == "ready":
		st.Ready = true
	case resp.StatusCode == http.StatusServiceUnavailable && ans.Status == "not ready":
	default:
		return fail(ProbeBadAnswer, fmt.Errorf("status %d with %q: not a readiness report", resp.StatusCode, ans.Status))
	}
	if len(ans.Checks) > maxChecks {
		return fail(ProbeBadAnswer, fmt.Errorf("%d checks, at most %d", len(ans.Checks), maxChecks))
	}
	var failed []string
	for name, result := range ans.Checks {
		if !checkNamePattern.MatchString(name) {
			st.Ready, st.Checks = false, map[string]string{}
			return fail(ProbeBadAnswer, fmt.Errorf("check name %q", name))
		}
		st.Checks[name] = CheckOK
		if result != "ok" {
			st.Checks[name] = CheckFailing
			failed = append(failed, name+": "+result)
		}
	}
	if !st.Ready {
		slices.Sort(failed)
		return st, fmt.Errorf("not ready: %s", strings.Join(failed, "; "))
	}
	return st, nil
}

// transportPhrase says why a request got no whole answer.
func transportPhrase(ctx context.Context, err error) string {
	var ne net.Error
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return ProbeTimedOut
	}
	return ProbeUnreachable
}

// log records a component's outcome when it changed since the last round
// (not every round: the console refreshes), with the detail the status
// does not show.
func (p *prober) log(st componentStatus, detail error) {
	outcome := "ready"
	if !st.Ready {
		failing := []string{}
		for name, r := range st.Checks {
			if r != CheckOK {
				failing = append(failing, name)
			}
		}
		slices.Sort(failing)
		outcome = "not ready " + st.Error + " " + strings.Join(failing, ",")
	}
	p.mu.Lock()
	prev, seen := p.outcome[st.Name]
	p.outcome[st.Name] = outcome
	p.mu.Unlock()
	switch {
	case outcome == prev:
	case st.Ready && seen:
		p.logger.Info("status: component ready again", "component", st.Name)
	case !st.Ready:
		p.logger.Warn("status: component not ready", "component", st.Name, "reason", cmp.Or(st.Error, "checks failing"), "err", detail)
	}
}

// selfStatus is the query service's own readiness as a component: its
// checks' names and whether each passed. err (ctx ended) is timed out.
func selfStatus(ready bool, checks map[string]string, err error) componentStatus {
	st := componentStatus{Name: SelfComponent, Ready: ready && err == nil, Checks: map[string]string{}}
	if err != nil {
		st.Error = ProbeTimedOut
		return st
	}
	for name := range checks {
		st.Checks[name] = CheckOK
		if checks[name] != "ok" {
			st.Checks[name] = CheckFailing
		}
	}
	return st
}

package query

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/query/billing"
	"github.com/tally-oss/tally/query/usage"
	"github.com/tally-oss/tally/schemas"
)

// catalogEnv is the query env with the catalog routes mounted in front of
// the query service, on the same ClickHouse database, behind the same
// authentication, with a clock the test sets.
type catalogEnv struct {
	*env
	store *catalogstore.Store
	clock *testClock
}

// testClock is the catalog's "now": the real time until set.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t.IsZero() {
		return time.Now()
	}
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func newCatalogEnv(t *testing.T) *catalogEnv {
	t.Helper()
	return newCatalogEnvRows(t, DefaultMaxRows)
}

// newCatalogEnvRows is newCatalogEnv with a row limit (query.max-rows) of
// maxRows.
func newCatalogEnvRows(t *testing.T, maxRows int) *catalogEnv {
	t.Helper()
	e := newEnv(t)
	clock := &testClock{}
	store := catalogstore.New(e.conn)
	meters := meterstore.New(e.conn)
	usageSvc := usage.NewService(meters, usage.NewClickHouseReader(e.conn, maxRows, nil), meterstore.ErrNotFound)
	billingSvc := billing.New(store, usageSvc, catalogstore.ErrNotFound, maxRows)
	billingSvc.SetClock(clock.now)
	routes := catalogRoutes(catalogDeps{
		store: store, meters: meters, billing: billingSvc,
		timeout: DefaultTimeout, now: clock.now,
	})
	mux := testenv.RoutesMux(t, "acme:"+keyAcme+",globex:"+keyGlobex, routes)
	mux.Handle("/", e.svc.Handler()) // the meters API
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return &catalogEnv{env: e, store: store, clock: clock}
}

// sub returns the env for subtest t, so that its failures stop only t.
func (c *catalogEnv) sub(t *testing.T) *catalogEnv {
	cp := *c
	cp.env = c.env.sub(t)
	return &cp
}

// call sends body ("" for none) as JSON and returns the status and body.
func (c *catalogEnv) call(method, path, key, body string) (int, []byte) {
	c.t.Helper()
	var raw []byte
	if body != "" {
		raw = []byte(body)
	}
	code, out, _ := c.do(method, path, key, raw)
	return code, out
}

// mustCall is call that fails unless the status is want, decoding the
// body into v (unless nil).
func (c *catalogEnv) mustCall(method, path, key, body string, want int, v any) {
	c.t.Helper()
	code, out := c.call(method, path, key, body)
	if code != want {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, code, out, want)
	}
	if v != nil {
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber()
		if err := dec.Decode(v); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, out, err)
		}
	}
}

func (c *catalogEnv) createCustomer(key, body string) schemas.Customer {
	c.t.Helper()
	var out schemas.Customer
	c.mustCall("POST", CustomersRoute, key, body, http.StatusCreated, &out)
	return out
}

func (c *catalogEnv) createPlan(key, body string) schemas.Plan {
	c.t.Helper()
	var out schemas.Plan
	c.mustCall("POST", PlansRoute, key, body, http.StatusCreated, &out)
	return out
}

func (c *catalogEnv) createSubscription(key, body string) schemas.Subscription {
	c.t.Helper()
	var out schemas.Subscription
	c.mustCall("POST", SubscriptionsRoute, key, body, http.StatusCreated, &out)
	return out
}

func (c *catalogEnv) getSubscription(key, id string) schemas.Subscription {
	c.t.Helper()
	var out schemas.Subscription
	c.mustCall("GET", SubscriptionsRoute+"/"+id, key, "", http.StatusOK, &out)
	return out
}

// apiError is a decoded error body with field details.
type apiError struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details []*errorDetail `json:"details"`
}

func (e apiError) fields() []string {
	var out []string
	for _, d := range e.Details {
		out = append(out, d.Field)
	}
	return out
}

// wantFieldError checks an error response: its status, code, and (unless
// field is "") a detail naming field.
func wantFieldError(t *testing.T, status int, body []byte, wantStatus int, wantCode, field string) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("decode error %s: %v", body, err)
	}
	if status != wantStatus || e.Code != wantCode {
		t.Fatalf("got %d %s, want %d with code %s", status, body, wantStatus, wantCode)
	}
	if field != "" && !slices.Contains(e.fields(), field) {
		t.Fatalf("details name %q, want %q: %s", e.fields(), field, body)
	}
	return e
}

// wantMessage checks that an error message says what to do.
func wantMessage(t *testing.T, e apiError, fragments ...string) {
	t.Helper()
	text := e.Message
	for _, d := range e.Details {
		text += " " + d.Message
	}
	for _, f := range fragments {
		if !strings.Contains(text, f) {
			t.Errorf("message %q does not mention %q", text, f)
		}
	}
}

// listPage is a decoded list response.
type listPage[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// listAll walks every page of a list, limit items at a time, and returns
// the ids of what it saw, in order.
func listAll[T any](c *catalogEnv, route, key, query string, limit int, id func(T) string) []string {
	c.t.Helper()
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			c.t.Fatal("more than 100 pages")
		}
		path := route + "?limit=" + strconv.Itoa(limit) + query
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		var p listPage[T]
		c.mustCall("GET", path, key, "", http.StatusOK, &p)
		if len(p.Data) > limit {
			c.t.Fatalf("GET %s: %d items", path, len(p.Data))
		}
		for _, item := range p.Data {
			ids = append(ids, id(item))
		}
		if p.NextCursor == nil {
			return ids
		}
		if len(p.Data) != limit {
			c.t.Fatalf("GET %s: a page of %d with a next cursor", path, len(p.Data))
		}
		cursor = *p.NextCursor
	}
}

// decodeJSON decodes body into v, numbers as json.Number.
func decodeJSON(t *testing.T, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}

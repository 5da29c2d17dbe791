package lago

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/query/billing"
	"github.com/tally-oss/tally/query/rating"
	"github.com/tally-oss/tally/query/usage"
)

// unreachableClickHouse is a connection to an address nothing listens
// on: every call fails as it does when ClickHouse is down.
func unreachableClickHouse(t *testing.T) driver.Conn {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Protocol: clickhouse.Native, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// serveLago serves Lago's routes built from d and GETs current usage.
func serveLago(t *testing.T, d Deps, customer, subscription string) (*http.Response, string) {
	t.Helper()
	mux := testenv.RoutesMux(t, "acme:"+acmeKey, Routes(d))
	req := httptest.NewRequest(http.MethodGet, "/api/v1/customers/"+customer+"/current_usage?external_subscription_id="+subscription, nil)
	req.Header.Set("Authorization", "Bearer "+acmeKey)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec.Result(), strings.TrimSpace(rec.Body.String())
}

// TestCurrentUsageWhenClickHouseFails answers 503 with Retry-After, in
// Lago's error shape, whichever read ClickHouse fails: the failure is
// not the request's and a retry may succeed, so a client must not give
// up on it as it would on a 500.
func TestCurrentUsageWhenClickHouseFails(t *testing.T) {
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	e := newLagoEnv(t, now)
	e.meter("acme", apiCallsMeter)
	e.meter("acme", storageMeter)
	e.customer("acme", `{"external_id": "cust-1"}`)
	e.plan("acme", proPlan)
	e.subscription("acme", `{"external_id": "sub-1", "external_customer_id": "cust-1", "plan_code": "pro", "subscription_at": "2026-01-10T00:00:00Z"}`)
	down := unreachableClickHouse(t)

	billingOn := func(catalogConn, readerConn driver.Conn) *billing.Service {
		meters := meterstore.New(catalogConn)
		svc := billing.New(catalogstore.New(catalogConn), usage.NewService(meters, usage.NewClickHouseReader(readerConn, 10_000, nil), meterstore.ErrNotFound),
			catalogstore.ErrNotFound, 10_000)
		svc.SetClock(func() time.Time { return now })
		return svc
	}
	tests := []struct {
		name                   string
		deps                   Deps
		customer, subscription string
		wantCode               string
	}{
		{name: "ClickHouse down", deps: Deps{Billing: billingOn(down, down), Catalog: catalogstore.New(down)},
			customer: "cust-1", subscription: "sub-1", wantCode: "unavailable"},
		{name: "usage read fails after the catalog answered", deps: Deps{Billing: billingOn(e.conn, down), Catalog: e.catalog},
			customer: "cust-1", subscription: "sub-1", wantCode: "unavailable"},
		{name: "customer lookup of a missing subscription fails", deps: Deps{Billing: billingOn(e.conn, e.conn), Catalog: catalogstore.New(down)},
			customer: "cust-1", subscription: "nothing", wantCode: "unavailable"},
		{name: "slower than the timeout", deps: Deps{Billing: billingOn(e.conn, e.conn), Catalog: e.catalog, Timeout: time.Nanosecond},
			customer: "cust-1", subscription: "sub-1", wantCode: "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := serveLago(t, tt.deps, tt.customer, tt.subscription)
			want := `{"status":503,"error":"Service Unavailable","code":"` + tt.wantCode + `"`
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.HasPrefix(body, want) || resp.Header.Get("Retry-After") == "" {
				t.Errorf("%d (Retry-After %q) %s, want 503 with Retry-After and %s", resp.StatusCode, resp.Header.Get("Retry-After"), body, want)
			}
		})
	}
}

// TestFailureStatus classifies the errors of a current usage request:
// ClickHouse unreachable, busy or too slow is 503 (retry), a result over
// the row limit 422 (retrying does not help), anything else a bug (500).
func TestFailureStatus(t *testing.T) {
	live := context.Background()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		ctx      context.Context
		err      error
		wantCode int
	}{
		{"connection refused", live, fmt.Errorf("usage of meter api: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}), 503},
		{"connection lost", live, fmt.Errorf("read: %w", io.ErrUnexpectedEOF), 503},
		{"no free connection", live, clickhouse.ErrAcquireConnTimeout, 503},
		{"deadline", live, fmt.Errorf("price: %w", context.DeadlineExceeded), 503},
		{"client gone", gone, fmt.Errorf("price: %w", context.Canceled), 503},
		{"TIMEOUT_EXCEEDED", live, &clickhouse.Exception{Code: 159, Message: "Timeout exceeded"}, 503},
		{"TOO_MANY_SIMULTANEOUS_QUERIES", live, &clickhouse.Exception{Code: 202}, 503},
		{"MEMORY_LIMIT_EXCEEDED", live, &clickhouse.Exception{Code: 241}, 503},
		{"a query ClickHouse refuses", live, fmt.Errorf("usage: %w", &clickhouse.Exception{Code: 62, Message: "Syntax error"}), 500},
		{"a plan rating cannot price", live, fmt.Errorf("price subscription \"s\": %w", rating.ErrInvalidPlan), 500},
		{"canceled while the client waits", live, context.Canceled, 500},
		{"over the row limit", live, fmt.Errorf("usage of meter storage by group: %w", usage.ErrTooManyRows), 422},
		{"an amount beyond int64 cents", live, fmt.Errorf("price subscription \"s\": %w", rating.ErrOverflow), 422},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := failureOf(tt.ctx, tt.err); got.Status != tt.wantCode {
				t.Errorf("failureOf(%v) = %+v, want status %d", tt.err, got, tt.wantCode)
			}
		})
	}
}

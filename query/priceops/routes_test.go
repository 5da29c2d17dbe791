package priceops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	acmeKey   = "acme-key-0123456789"
	globexKey = "globex-key-0123456789"
)

// now is the clock of every test: subscriptions before it are active.
var now = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// seedCustomers is the response of the seed document
// (../shared/seeds/priceops-customers-and-usage-api.txt), verbatim but for
// the array brackets the document leaves out around its two objects.
var seedCustomers = mustReadSeed("testdata/seed-customers.json")

func mustReadSeed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// newCatalog returns a catalog store on a fresh, migrated database.
func newCatalog(t *testing.T) *catalogstore.Store {
	t.Helper()
	conn := testenv.MigratedDatabase(t)
	return catalogstore.New(conn)
}

// seedCatalog creates in org the seed's two plans and customers 1007 and
// 1008 subscribed to both.
func seedCatalog(t *testing.T, store *catalogstore.Store, org string) {
	t.Helper()
	ctx := context.Background()
	amount := schemas.ChargeProperties{}
	for _, p := range []schemas.Plan{
		{Code: "better", Name: "Better", Interval: schemas.IntervalMonthly, AmountCurrency: "USD",
			Metadata: map[string]string{"scenario_name": "Product Launch", "project_name": "New Project"},
			Charges:  []schemas.Charge{{Meter: "API", ChargeModel: schemas.ChargeStandard, Properties: amount}}},
		{Code: "good_mvp", Name: "Good_MVP", Interval: schemas.IntervalMonthly, AmountCurrency: "USD",
			Metadata: map[string]string{"scenario_name": "Product Launch", "project_name": "Project - MVP Launch"},
			Charges:  []schemas.Charge{{Meter: "API", ChargeModel: schemas.ChargeStandard, Properties: amount}}},
	} {
		if _, err := store.CreatePlan(ctx, org, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{"1007", "1008"} {
		if _, _, err := store.PutCustomer(ctx, org, schemas.Customer{ExternalID: c}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"better", "good_mvp"} {
			subscribe(t, store, org, c+"-"+p, c, p, now.AddDate(0, -1, 0))
		}
	}
}

func subscribe(t *testing.T, store *catalogstore.Store, org, id, customer, planCode string, at time.Time) {
	t.Helper()
	_, err := store.CreateSubscription(context.Background(), org, schemas.Subscription{
		ExternalID: id, ExternalCustomerID: customer, PlanCode: planCode, SubscriptionAt: at,
		BillingTime: schemas.BillingCalendar, Timezone: "UTC",
	})
	if err != nil {
		t.Fatal(err)
	}
}

// serveRoutes serves routes behind authentication, as query does.
func serveRoutes(t *testing.T, routes []httpapi.Route) http.Handler {
	t.Helper()
	return testenv.RoutesMux(t, "acme:"+acmeKey+",globex:"+globexKey, routes)
}

// get requests org's customers with the Authorization header auth.
func get(h http.Handler, org, auth string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, "/api/v1/integration/organization/"+org+"/customers", nil)
	req.Header.Set("Authorization", auth)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatalf("%v in %s", err, a)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

func TestCustomers(t *testing.T) {
	store := newCatalog(t)
	seedCatalog(t, store, "acme")
	ctx := context.Background()
	// Left out: a terminated subscription, and a customer without any.
	subscribe(t, store, "acme", "old", "1009", "better", now.AddDate(0, -2, 0))
	if _, err := store.TerminateSubscription(ctx, "acme", "old", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.PutCustomer(ctx, "acme", schemas.Customer{ExternalID: "1010"}); err != nil {
		t.Fatal(err)
	}
	// globex has a customer and plan of its own that acme must never see.
	if _, err := store.CreatePlan(ctx, "globex", schemas.Plan{Code: "secret", Name: "Secret",
		Charges: []schemas.Charge{{Meter: "globex_meter", ChargeModel: schemas.ChargeStandard}}}); err != nil {
		t.Fatal(err)
	}
	subscribe(t, store, "globex", "g1", "g-customer", "secret", now.AddDate(0, 0, 1)) // pending

	h := serveRoutes(t, Routes(Deps{Catalog: store, Now: func() time.Time { return now }, Timeout: 10 * time.Second}))
	tests := []struct {
		name, org, auth string
		wantCode        int
		want            string // JSON, compared as a value
		wantErrCode     string
	}{
		{name: "seed example, bare key as PriceOps sends it", org: "acme", auth: acmeKey, wantCode: 200, want: seedCustomers},
		{name: "bearer key", org: "acme", auth: "Bearer " + acmeKey, wantCode: 200, want: seedCustomers},
		{name: "pending subscription", org: "globex", auth: globexKey, wantCode: 200,
			want: `[{"customer_id":"g-customer","customer_plans":[{"product_name":"Secret","status":"pending","scenario_name":"","project_name":""}],"resource_list":["globex_meter"]}]`},
		{name: "acme key, globex ORG_ID", org: "globex", auth: acmeKey, wantCode: 403, wantErrCode: httpapi.CodeForbidden},
		{name: "globex key, acme ORG_ID", org: "acme", auth: globexKey, wantCode: 403, wantErrCode: httpapi.CodeForbidden},
		{name: "unknown ORG_ID", org: "initech", auth: acmeKey, wantCode: 403, wantErrCode: httpapi.CodeForbidden},
		{name: "no key", org: "acme", auth: "", wantCode: 401, wantErrCode: httpapi.CodeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(h, tt.org, tt.auth)
			if code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", code, tt.wantCode, body)
			}
			if tt.want != "" && !sameJSON(t, body, tt.want) {
				t.Errorf("got  %s\nwant %s", body, tt.want)
			}
			if tt.wantErrCode != "" {
				var e httpapi.Error
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Code != tt.wantErrCode || e.Details != nil {
					t.Errorf("error body %s, want code %s and no details", body, tt.wantErrCode)
				}
				for _, leak := range []string{"1007", "Better", "g-customer", "Secret"} {
					if bytes.Contains([]byte(body), []byte(leak)) {
						t.Errorf("error body leaks %q: %s", leak, body)
					}
				}
			}
		})
	}
}

func TestCustomersPagesThroughTheCatalog(t *testing.T) {
	store := newCatalog(t)
	ctx := context.Background()
	if _, err := store.CreatePlan(ctx, "acme", schemas.Plan{Code: "p", Name: "P",
		Charges: []schemas.Charge{{Meter: "m", ChargeModel: schemas.ChargeStandard}}}); err != nil {
		t.Fatal(err)
	}
	// Seven subscriptions; the first page is all terminated, so a page
	// of them must not end the reading.
	for i := range 7 {
		subscribe(t, store, "acme", fmt.Sprintf("s%d", i), fmt.Sprintf("c%d", i%5), "p", now.AddDate(0, -1, 0))
		if i < 3 {
			if _, err := store.TerminateSubscription(ctx, "acme", fmt.Sprintf("s%d", i), now.Add(-time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := `[` // s3..s6: customers c3, c4, c0 (s5), c1 (s6)
	for i, c := range []string{"c0", "c1", "c3", "c4"} {
		if i > 0 {
			want += ","
		}
		want += `{"customer_id":"` + c + `","customer_plans":[{"product_name":"P","status":"active","scenario_name":"","project_name":""}],"resource_list":["m"]}`
	}
	want += `]`

	for _, tc := range []struct {
		pageSize, max, wantCode int
	}{
		{pageSize: 2, max: 10, wantCode: 200},
		{pageSize: 3, max: 4, wantCode: 200}, // exactly at the cap
		{pageSize: 1000, max: 4, wantCode: 200},
		{pageSize: 2, max: 3, wantCode: 413},
		{pageSize: 1000, max: 3, wantCode: 413},
	} {
		t.Run(fmt.Sprintf("page %d cap %d", tc.pageSize, tc.max), func(t *testing.T) {
			h := newHandler(Deps{Catalog: store, Now: func() time.Time { return now }})
			h.pageSize, h.maxSubscriptions = tc.pageSize, tc.max
			code, body := get(serveRoutes(t, []httpapi.Route{{Pattern: "GET " + CustomersRoute, Handler: h.customers}}), "acme", acmeKey)
			if code != tc.wantCode {
				t.Fatalf("status %d, want %d: %s", code, tc.wantCode, body)
			}
			if code == 200 && !sameJSON(t, body, want) {
				t.Errorf("got  %s\nwant %s", body, want)
			}
			if code == 413 && !bytes.Contains([]byte(body), []byte(`"code":"payload_too_large"`)) {
				t.Errorf("413 body %s", body)
			}
		})
	}
}

func TestCustomersCatalogTimeoutIs503(t *testing.T) {
	store := newCatalog(t)
	seedCatalog(t, store, "acme")
	h := serveRoutes(t, Routes(Deps{Catalog: store, Timeout: time.Nanosecond}))
	code, body := get(h, "acme", acmeKey)
	if code != http.StatusServiceUnavailable || !bytes.Contains([]byte(body), []byte(`"code":"unavailable"`)) {
		t.Fatalf("status %d: %s", code, body)
	}
}

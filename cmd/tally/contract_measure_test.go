package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// measureUsage is the part of Measure's subscription usage answer the
// contract test reads.
type measureUsage struct {
	Usage []struct {
		Period struct {
			StartDate string `json:"start_date"`
			EndDate   string `json:"end_date"`
		} `json:"period"`
		Value     json.Number `json:"value"`
		Breakdown []struct {
			Grouping map[string]string `json:"grouping"`
			Value    json.Number       `json:"value"`
		} `json:"breakdown"`
	} `json:"usage"`
}

// values renders the usage as "start..end=value" per period.
func (u measureUsage) values() []string {
	var out []string
	for _, p := range u.Usage {
		out = append(out, p.Period.StartDate+".."+p.Period.EndDate+"="+p.Value.String())
	}
	return out
}

// TestMeasureContract posts Measure's "Get Subscription Usage" request in
// the seed's shape (measure-subscription-usage-api.txt; the request is
// kept in query/measure/testdata) through the one base URL, after usage
// went HTTP -> Kafka -> aggregator -> ClickHouse, and checks every
// top-level field of the answer, the figures per New York billing period,
// and that the quantity is the one Lago's current_usage and the native
// subscription usage report.
func TestMeasureContract(t *testing.T) {
	p := startPipeline(t)
	api := p.apiURL
	mustDo := func(method, path, key, body string, want int) []byte {
		t.Helper()
		return p.mustAPI(key, method, path, body, want)
	}
	p.createMeter(acmeKey, `{"key": "tokens", "event_type": "completion", "aggregation": "SUM",
		"value_property": "tokens", "group_by": {"region": "region"}}`)
	code, out := p.do("POST", api+"/api/v1/customers", acmeKey, "application/json",
		[]byte(`{"external_id": "cust-1", "timezone": "America/New_York", "currency": "USD"}`))
	if code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("create customer: %d %s", code, out)
	}
	var plan struct {
		Charges []struct {
			ID string `json:"id"`
		} `json:"charges"`
	}
	if err := json.Unmarshal(mustDo("POST", "/api/v1/plans", acmeKey, `{"code": "pro", "name": "Pro", "interval": "monthly",
		"amount_cents": 4900, "amount_currency": "USD",
		"charges": [{"meter": "tokens", "charge_model": "standard", "properties": {"amount": "0.01"}}]}`, http.StatusCreated), &plan); err != nil || len(plan.Charges) != 1 {
		t.Fatalf("plan: %+v %v", plan, err)
	}
	charge := plan.Charges[0].ID
	mustDo("POST", "/api/v1/subscriptions", acmeKey, `{"external_id": "sub-1", "external_customer_id": "cust-1",
		"plan_code": "pro", "subscription_at": "2026-02-01T05:00:00Z", "billing_time": "calendar",
		"timezone": "America/New_York"}`, http.StatusCreated)

	now := time.Now().UTC().Add(-2 * time.Second).Truncate(time.Second).Format(time.RFC3339)
	events, _ := json.Marshal([]map[string]any{
		// 22:00 on February 28 in New York: February's period.
		ev("feb", "completion", "cust-1", "2026-03-01T03:00:00Z", map[string]any{"tokens": 5, "region": "us"}),
		// 00:30 EDT on March 9, the day after DST starts.
		ev("mar", "completion", "cust-1", "2026-03-09T04:30:00Z", map[string]any{"tokens": 7, "region": "eu"}),
		ev("now-1", "completion", "cust-1", now, map[string]any{"tokens": 11, "region": "us"}),
		ev("now-2", "completion", "cust-1", now, map[string]any{"tokens": "13.5", "region": "eu"}),
		ev("other", "completion", "cust-2", now, map[string]any{"tokens": 1000, "region": "us"}),
	})
	mustDo("POST", "/api/v1/events", acmeKey, string(events), http.StatusAccepted)

	// The seed's request, its placeholders replaced by this subscription's
	// charge and a range over the end of February and the DST change.
	seed, err := os.ReadFile("../../query/measure/testdata/seed-request.json")
	if err != nil {
		t.Fatal(err)
	}
	request := strings.NewReplacer(`"<string>"`, `"`+charge+`"`,
		`"start_date": "2023-11-07T05:31:56Z"`, `"start_date": "2026-02-25T05:00:00Z"`,
		`"end_date": "2023-11-07T05:31:56Z"`, `"end_date": "2026-03-10T04:00:00Z"`).Replace(string(seed))
	usagePath := "/api/v1/companies/cmp_acme/subscriptions/sub-1/usage"
	var body []byte
	var got measureUsage
	want := []string{"2026-02-25T05:00:00Z..2026-03-01T05:00:00Z=5", "2026-03-01T05:00:00Z..2026-03-10T04:00:00Z=7"}
	waitFor(t, func() bool {
		body = mustDo("POST", usagePath, acmeKey, request, http.StatusOK)
		got = decodeMeasure(t, body)
		return slices.Equal(got.values(), want)
	}, func() string { return "Measure usage " + string(body) + ", want " + strings.Join(want, " ") })

	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"metric", "product_metric_pricing", "usage"} { // every top-level field of the seed
		if v, ok := top[field]; !ok || string(v) == "null" {
			t.Errorf("response field %s: %s", field, v)
		}
	}
	for _, field := range []string{`"metering_rule"`, `"aggregator":"sum"`, `"item_pricing"`, `"fixed_price":{"price_per_unit":0.01}`,
		`"frequency":"MONTH"`, `"product_id":"pro"`, `"breakdown"`, `"subscription_metric_record_id"`} {
		if !bytes.Contains(body, []byte(field)) {
			t.Errorf("response lacks %s: %s", field, body)
		}
	}

	// The native usage of March up to the end of the request counts the same.
	var native struct {
		Charges []struct {
			ChargeID string      `json:"charge_id"`
			Units    json.Number `json:"units"`
		} `json:"charges"`
	}
	q := url.Values{"from": {"2026-03-01T05:00:00Z"}, "to": {"2026-03-10T04:00:00Z"}}
	if err := json.Unmarshal(mustDo("GET", "/api/v1/subscriptions/sub-1/usage?"+q.Encode(), acmeKey, "", http.StatusOK), &native); err != nil ||
		len(native.Charges) != 1 || !sameDecimal(native.Charges[0].Units.String(), got.Usage[1].Value.String()) {
		t.Errorf("native units %+v (%v), Measure %s", native, err, got.Usage[1].Value)
	}

	// Lago's current usage and Measure over the current period agree.
	var lago struct {
		CustomerUsage struct {
			From         string `json:"from_datetime"`
			To           string `json:"to_datetime"`
			ChargesUsage []struct {
				Units  string `json:"units"`
				Charge struct {
					LagoID string `json:"lago_id"`
				} `json:"charge"`
			} `json:"charges_usage"`
		} `json:"customer_usage"`
	}
	lagoPath := "/api/v1/customers/cust-1/current_usage?external_subscription_id=sub-1"
	var current measureUsage
	waitFor(t, func() bool {
		if err := json.Unmarshal(mustDo("GET", lagoPath, acmeKey, "", http.StatusOK), &lago); err != nil {
			t.Fatal(err)
		}
		cu := lago.CustomerUsage
		current = decodeMeasure(t, mustDo("POST", usagePath, acmeKey, `{"product_metric_pricing_id": "`+charge+
			`", "period": {"start_date": "`+cu.From+`", "end_date": "`+cu.To+`"}}`, http.StatusOK))
		return len(cu.ChargesUsage) == 1 && len(current.Usage) == 1 && cu.ChargesUsage[0].Charge.LagoID == charge &&
			sameDecimal(cu.ChargesUsage[0].Units, currentTokens(cu.From, cu.To)) &&
			sameDecimal(current.Usage[0].Value.String(), cu.ChargesUsage[0].Units)
	}, func() string {
		return "Lago current usage " + string(mustDo("GET", lagoPath, acmeKey, "", http.StatusOK)) +
			", Measure " + strings.Join(current.values(), " ") + ", want both " + currentTokens(lago.CustomerUsage.From, lago.CustomerUsage.To)
	})

	// Another organization's key, on either company id, finds nothing.
	for _, company := range []string{"cmp_acme", "acme", "cmp_globex"} {
		code, out := p.do("POST", api+"/api/v1/companies/"+company+"/subscriptions/sub-1/usage", globexKey, "application/json", []byte(request))
		if code != http.StatusNotFound || bytes.Contains(out, []byte("tokens")) {
			t.Errorf("globex on %s: %d %s", company, code, out)
		}
	}
}

// currentTokens is the tokens the contract test's events put in the
// current period [from, to): 11 + 13.5 sent just now, plus the fixed-date
// events when the test runs in their period.
func currentTokens(from, to string) string {
	f, errF := time.Parse(time.RFC3339, from)
	t, errT := time.Parse(time.RFC3339, to)
	if errF != nil || errT != nil {
		return "unknown period " + from + ".." + to
	}
	sum := decimal.RequireFromString("24.5")
	for at, tokens := range map[string]int64{"2026-03-01T03:00:00Z": 5, "2026-03-09T04:30:00Z": 7} {
		if ts, _ := time.Parse(time.RFC3339, at); !ts.Before(f) && ts.Before(t) {
			sum = sum.Add(decimal.NewFromInt(tokens))
		}
	}
	return sum.String()
}

func decodeMeasure(t *testing.T, body []byte) measureUsage {
	t.Helper()
	var u measureUsage
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&u); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return u
}

// sameDecimal reports whether two decimal texts are the same number.
func sameDecimal(a, b string) bool {
	da, errA := decimal.NewFromString(a)
	db, errB := decimal.NewFromString(b)
	return errA == nil && errB == nil && da.Equal(db)
}

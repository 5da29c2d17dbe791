package query

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

const basicPlan = `{"code": "basic", "name": "Basic", "interval": "monthly", "amount_cents": 1000, "amount_currency": "USD",
	"charges": [
		{"meter": "calls", "charge_model": "standard", "properties": {"amount": "0.01"}},
		{"meter": "storage", "charge_model": "graduated", "invoice_display_name": "Storage",
		 "properties": {"graduated_ranges": [
			{"from_value": 0, "to_value": 10, "per_unit_amount": "0", "flat_amount": "0"},
			{"from_value": 11, "to_value": null, "per_unit_amount": "0.5", "flat_amount": "1"}]}}]}`

// catalogMeters defines the meters the test plans charge.
func (c *catalogEnv) catalogMeters(key string) (calls, storage schemas.Meter) {
	c.t.Helper()
	calls = c.createMeter(key, `{"key": "calls", "event_type": "call", "aggregation": "COUNT", "group_by": {"region": "$.region"}}`)
	storage = c.createMeter(key, `{"key": "storage", "event_type": "storage", "aggregation": "SUM", "value_property": "$.gb"}`)
	return calls, storage
}

func TestPlansCRUD(t *testing.T) {
	c := newCatalogEnv(t)
	c.catalogMeters(keyAcme)
	code, body, header := c.do("POST", PlansRoute, keyAcme, []byte(basicPlan))
	if code != http.StatusCreated || header.Get("Location") != "/api/v1/plans/basic" {
		t.Fatalf("create: %d %s, Location %q", code, body, header.Get("Location"))
	}
	var created schemas.Plan
	c.mustCall("GET", PlansRoute+"/basic", keyAcme, "", http.StatusOK, &created)
	if len(created.Charges) != 2 || created.Charges[0].ID == "" || created.Charges[1].ID == "" || created.Revision == 0 ||
		created.AmountCents != 1000 || created.Charges[1].Properties.GraduatedRanges[1].PerUnitAmount.String() != "0.5" {
		t.Fatalf("GET after create: %+v", created)
	}
	callsID, storageID := created.Charges[0].ID, created.Charges[1].ID

	// PUT replaces the definition; without a code (the path's) and without
	// charge ids, the charges keep theirs (matched by meter).
	var updated schemas.Plan
	c.mustCall("PUT", PlansRoute+"/basic", keyAcme, `{"plan": {"name": "Basic 2", "interval": "monthly", "amount_currency": "USD",
		"charges": [
			{"meter": "storage", "charge_model": "standard", "properties": {"amount": "0.2"}},
			{"meter": "calls", "charge_model": "package", "properties": {"amount": "1", "package_size": 100}}]}}`,
		http.StatusOK, &updated)
	if updated.Name != "Basic 2" || updated.AmountCents != 0 || updated.Revision != created.Revision ||
		!updated.CreatedAt.Equal(created.CreatedAt) || len(updated.Charges) != 2 ||
		updated.Charges[0].ID != storageID || updated.Charges[1].ID != callsID {
		t.Errorf("after PUT: %+v; ids were calls %s storage %s", updated, callsID, storageID)
	}
	// An explicit id keeps the charge it names; a new charge gets a new id.
	c.mustCall("PUT", PlansRoute+"/basic", keyAcme, fmt.Sprintf(`{"code": "basic", "name": "Basic 3", "interval": "yearly",
		"amount_currency": "USD", "charges": [
			{"id": %q, "meter": "calls", "charge_model": "standard", "properties": {"amount": "0.02"}},
			{"meter": "calls", "charge_model": "standard", "properties": {"amount": "0.03"}}]}`, callsID),
		http.StatusOK, &updated)
	if updated.Charges[0].ID != callsID || updated.Charges[1].ID == "" || slices.Contains([]string{callsID, storageID}, updated.Charges[1].ID) {
		t.Errorf("charge ids after the second PUT: %+v", updated.Charges)
	}
	var got schemas.Plan
	c.mustCall("GET", PlansRoute+"/basic", keyAcme, "", http.StatusOK, &got)
	if got.Name != "Basic 3" || got.Interval != schemas.IntervalYearly || len(got.Charges) != 2 {
		t.Errorf("GET after PUT: %+v", got)
	}

	var list listPage[schemas.Plan]
	c.mustCall("GET", PlansRoute, keyAcme, "", http.StatusOK, &list)
	if len(list.Data) != 1 || list.Data[0].Code != "basic" || list.NextCursor != nil {
		t.Errorf("list: %+v", list)
	}

	c.mustCall("DELETE", PlansRoute+"/basic", keyAcme, "", http.StatusNoContent, nil)
	for _, method := range []string{"GET", "DELETE"} {
		code, body := c.call(method, PlansRoute+"/basic", keyAcme, "")
		wantMessage(t, wantFieldError(t, code, body, http.StatusNotFound, httpapi.CodeNotFound, ""), "GET /api/v1/plans")
	}
	code, body = c.call("PUT", PlansRoute+"/basic", keyAcme, basicPlan)
	wantFieldError(t, code, body, http.StatusNotFound, httpapi.CodeNotFound, "")
	// The code is free again.
	c.createPlan(keyAcme, basicPlan)
}

func TestPlanValidation(t *testing.T) {
	c := newCatalogEnv(t)
	c.catalogMeters(keyAcme)
	c.createPlan(keyAcme, basicPlan)
	plan := func(charges string) string {
		return `{"code": "p2", "name": "P2", "interval": "monthly", "amount_currency": "USD", "charges": [` + charges + `]}`
	}
	graduated := func(ranges string) string {
		return plan(`{"meter": "calls", "charge_model": "graduated", "properties": {"graduated_ranges": [` + ranges + `]}}`)
	}
	tests := []struct {
		name, method, path, body string
		field                    string
		message                  string
	}{
		{"unknown meter", "POST", PlansRoute, plan(`{"meter": "calls", "charge_model": "standard", "properties": {"amount": "1"}},
			{"meter": "nope", "charge_model": "standard", "properties": {"amount": "1"}}`), "charges[1].meter", "GET /api/v1/meters"},
		{"code in use", "POST", PlansRoute, basicPlan, "code", "PUT /api/v1/plans/basic"},
		{"unknown currency", "POST", PlansRoute, `{"code": "p2", "name": "P2", "interval": "monthly", "amount_currency": "ABC"}`,
			"amount_currency", "ISO 4217"},
		{"unknown interval", "POST", PlansRoute, `{"code": "p2", "name": "P2", "interval": "daily", "amount_currency": "USD"}`,
			"interval", "monthly"},
		{"tier gap", "POST", PlansRoute, graduated(`{"from_value": 0, "to_value": 10}, {"from_value": 12, "to_value": null}`),
			"charges[0].properties.graduated_ranges[1].from_value", "gap"},
		{"tier overlap", "POST", PlansRoute, graduated(`{"from_value": 0, "to_value": 10}, {"from_value": 5, "to_value": null}`),
			"charges[0].properties.graduated_ranges[1].from_value", "overlaps"},
		{"unbounded middle tier", "POST", PlansRoute, graduated(`{"from_value": 0, "to_value": null}, {"from_value": 10, "to_value": null}`),
			"charges[0].properties.graduated_ranges[0].to_value", "only the last"},
		{"unknown charge model", "POST", PlansRoute, plan(`{"meter": "calls", "charge_model": "percentage", "properties": {}}`),
			"charges[0].charge_model", "standard"},
		{"put: code differs", "PUT", PlansRoute + "/basic", `{"code": "other", "name": "B", "interval": "monthly", "amount_currency": "USD"}`,
			"code", "the code in the path"},
		{"put: unknown charge id", "PUT", PlansRoute + "/basic", `{"name": "B", "interval": "monthly", "amount_currency": "USD",
			"charges": [{"id": "ch_nope", "meter": "calls", "charge_model": "standard", "properties": {"amount": "1"}}]}`,
			"charges[0].id", "omit id"},
		{"put: unknown meter", "PUT", PlansRoute + "/basic", `{"name": "B", "interval": "monthly", "amount_currency": "USD",
			"charges": [{"meter": "nope", "charge_model": "standard", "properties": {"amount": "1"}}]}`,
			"charges[0].meter", "GET /api/v1/meters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := c.sub(t).call(tt.method, tt.path, keyAcme, tt.body)
			wantMessage(t, wantFieldError(t, code, body, http.StatusBadRequest, httpapi.CodeValidation, tt.field), tt.message)
		})
	}
	var list listPage[schemas.Plan]
	c.mustCall("GET", PlansRoute, keyAcme, "", http.StatusOK, &list)
	if len(list.Data) != 1 || list.Data[0].Name != "Basic" {
		t.Errorf("the invalid requests changed the plans: %+v", list.Data)
	}
}

// A plan that live subscriptions bill cannot be deleted, nor change its
// currency or interval; once they are terminated it can.
func TestPlanInUse(t *testing.T) {
	c := newCatalogEnv(t)
	c.catalogMeters(keyAcme)
	c.createPlan(keyAcme, basicPlan)
	var ids []string
	for i := range 12 {
		id := fmt.Sprintf("sub-%02d", i)
		customer := fmt.Sprintf("c%02d", i) // one customer's subscriptions cannot share a meter
		c.createCustomer(keyAcme, `{"external_id": "`+customer+`"}`)
		c.createSubscription(keyAcme, `{"external_id": "`+id+`", "external_customer_id": "`+customer+`", "plan_code": "basic"}`)
		ids = append(ids, id)
	}
	c.mustCall("DELETE", SubscriptionsRoute+"/sub-00", keyAcme, "", http.StatusOK, nil)

	code, body := c.call("DELETE", PlansRoute+"/basic", keyAcme, "")
	var conflict struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details struct {
			Subscriptions []string `json:"subscriptions"`
			Count         int      `json:"count"`
		} `json:"details"`
	}
	decodeJSON(t, body, &conflict)
	// Every subscription counts, the terminated sub-00 too: its periods
	// are priced with the plan.
	if code != http.StatusConflict || conflict.Code != httpapi.CodeConflict || conflict.Details.Count != 12 ||
		!slices.Equal(conflict.Details.Subscriptions, ids[0:10]) {
		t.Fatalf("DELETE a plan in use: %d %s", code, body)
	}

	code, body = c.call("PUT", PlansRoute+"/basic", keyAcme, `{"name": "Basic", "interval": "weekly", "amount_currency": "EUR"}`)
	e := wantFieldError(t, code, body, http.StatusBadRequest, httpapi.CodeValidation, "amount_currency")
	if !slices.Contains(e.fields(), "interval") {
		t.Errorf("PUT changing the interval: %s", body)
	}
	// Other changes are fine.
	c.mustCall("PUT", PlansRoute+"/basic", keyAcme, `{"name": "Basic", "interval": "monthly", "amount_currency": "USD", "amount_cents": 5}`,
		http.StatusOK, nil)

	// Ended, its subscriptions still keep it; a plan nobody used goes.
	for _, id := range ids[1:] {
		c.mustCall("DELETE", SubscriptionsRoute+"/"+id, keyAcme, "", http.StatusOK, nil)
	}
	c.mustCall("DELETE", PlansRoute+"/basic", keyAcme, "", http.StatusConflict, nil)
	c.createPlan(keyAcme, `{"code": "unused", "name": "Unused", "interval": "monthly", "amount_currency": "USD"}`)
	c.mustCall("DELETE", PlansRoute+"/unused", keyAcme, "", http.StatusNoContent, nil)
}

func TestPlansPagination(t *testing.T) {
	c := newCatalogEnv(t)
	c.catalogMeters(keyAcme)
	var want []string
	for _, code := range []string{"gold", "bronze", "silver", "Platinum", "free"} {
		c.createPlan(keyAcme, `{"code": "`+code+`", "name": "x", "interval": "monthly", "amount_currency": "EUR"}`)
		want = append(want, code)
	}
	slices.Sort(want)
	for _, limit := range []int{1, 2, 4, 100} {
		got := listAll(c, PlansRoute, keyAcme, "", limit, func(p schemas.Plan) string { return p.Code })
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: %q, want %q", limit, got, want)
		}
	}
	code, body := c.call("GET", PlansRoute+"?code=gold", keyAcme, "")
	wantFieldError(t, code, body, http.StatusBadRequest, httpapi.CodeValidation, "code")
}

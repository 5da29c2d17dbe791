package measure

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/query/billing"
	"github.com/tally-oss/tally/schemas"
)

// companyPrefix is how Measure's ids of companies begin.
const companyPrefix = "cmp_"

// The enumeration values this API answers with (see the package doc).
const (
	typeUsage         = "USAGE"
	chargePostPayment = "POST_PAYMENT"
	stateActive       = "ACTIVE"
)

// frequencies is the one table of plan intervals as Measure's frequency;
// an interval missing here is an error, never a default.
var frequencies = map[schemas.Interval]string{
	schemas.IntervalWeekly:    "WEEK",
	schemas.IntervalMonthly:   "MONTH",
	schemas.IntervalQuarterly: "QUARTER",
	schemas.IntervalYearly:    "YEAR",
}

// sameCompany reports whether a path's company_id names orgID.
func sameCompany(companyID, orgID string) bool {
	return companyID == orgID || companyID == companyPrefix+orgID
}

// timeText is an RFC 3339 time in UTC, or null for a time never set.
func timeText(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := formatTime(t)
	return &s
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// number is an exact decimal as a JSON number.
func number(d decimal.Decimal) json.Number { return json.Number(d.String()) }

// metricOf describes the meter a charge is on. A meter deleted since the
// plan was written has only its key (found false) and no rule.
func metricOf(orgID, key string, m schemas.Meter, found bool) (metric, error) {
	out := metric{
		CompanyID: companyPrefix + orgID, ID: key, ItemID: key, Name: key, ExternalName: key, Type: typeUsage,
		MeteringRule: meteringRule{GroupKeys: []string{}},
	}
	if !found {
		return out, nil
	}
	spec, err := m.Aggregation.Spec()
	if err != nil {
		return metric{}, fmt.Errorf("meter %s: %w", key, err)
	}
	if m.Name != "" {
		out.Name, out.ExternalName = m.Name, m.Name
	}
	out.Description = m.Description
	out.CreatedAt, out.UpdatedAt = timeText(m.CreatedAt), timeText(m.CreatedAt)
	out.MeteringRule = meteringRule{Aggregator: spec.MeasureName, GroupKeys: append([]string{}, m.GroupKeys()...),
		Property: m.ValueProperty}
	if m.Filter != nil {
		rule, err := json.Marshal(m.Filter)
		if err != nil {
			return metric{}, fmt.Errorf("meter %s filter: %w", key, err)
		}
		out.MeteringRule.Rule = string(rule)
	}
	return out, nil
}

// itemOf is the billable item of a metric: the same meter.
func itemOf(m metric) item {
	return item{CompanyID: m.CompanyID, CreatedAt: m.CreatedAt, Description: m.Description,
		ExternalName: m.ExternalName, ID: m.ItemID, Name: m.Name, Type: typeUsage, UpdatedAt: m.UpdatedAt}
}

// pricingOf describes charge c of sub's plan as a product metric pricing.
func pricingOf(orgID string, sub billing.Subscription, c schemas.Charge, met metric) (productMetricPricing, error) {
	plan := sub.Plan
	freq, ok := frequencies[plan.Interval]
	if !ok {
		return productMetricPricing{}, fmt.Errorf("plan %s: unknown interval %q", plan.Code, plan.Interval)
	}
	cmp := companyPrefix + orgID
	name := c.InvoiceDisplayName
	if name == "" {
		name = met.Name
	}
	it := itemOf(met)
	created, updated := timeText(plan.CreatedAt), timeText(plan.UpdatedAt)
	ip := itemPricing{
		BasePrice: &money{Currency: plan.AmountCurrency, ValueInCents: plan.AmountCents}, BaseUnits: "0",
		ChargeType: chargePostPayment, Company: companyOf(orgID), CompanyID: cmp, CreatedAt: created,
		ExternalName: name, Frequency: freq, ID: c.ID, Item: it, ItemID: it.ID, Metadata: map[string]string{},
		Name: name, State: stateActive, Type: typeUsage, UpdatedAt: updated,
	}
	if plan.MinimumCommitmentCents > 0 {
		ip.MinimumSpend = &money{Currency: plan.AmountCurrency, ValueInCents: plan.MinimumCommitmentCents}
	}
	if err := priceCharge(c, &ip); err != nil {
		return productMetricPricing{}, fmt.Errorf("charge %s of plan %s: %w", c.ID, plan.Code, err)
	}
	return productMetricPricing{
		CompanyID: cmp, CreatedAt: created, ID: c.ID, Item: it, ItemID: it.ID, ItemPricing: ip, ItemPricingID: c.ID,
		Metric: met, MetricID: met.ID, Product: productOf(orgID, plan), ProductID: plan.Code, UpdatedAt: updated,
	}, nil
}

// companyOf is the organization as a company; Tally knows only its id.
func companyOf(orgID string) company {
	return company{ComputedEntitlements: map[string]string{}, ID: companyPrefix + orgID, Name: orgID, Slug: orgID}
}

// productOf is the plan as a product.
func productOf(orgID string, plan schemas.Plan) product {
	metadata := map[string]string{}
	for k, v := range plan.Metadata {
		metadata[k] = v
	}
	return product{
		CompanyID: companyPrefix + orgID, CreatedAt: timeText(plan.CreatedAt), Description: plan.Description,
		Entitlements: []any{}, ExternalName: plan.Name, ID: plan.Code, Metadata: metadata, Name: plan.Name,
		ProductPricings: []any{}, State: stateActive, Tags: []string{}, UpdatedAt: timeText(plan.UpdatedAt),
	}
}

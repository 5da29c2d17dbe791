package lago

import (
	"time"

	"github.com/google/uuid"

	"github.com/tally-oss/tally/query/billing"
	"github.com/tally-oss/tally/query/rating"
	"github.com/tally-oss/tally/schemas"
)

// CustomerUsage is Lago's customer_usage object: the priced usage of one
// subscription in its current billing period. Like Lago's current usage,
// the amounts are the usage charges only: the plan's fixed fee and the
// minimum-commitment true-up are billed on the invoice, not shown here.
type CustomerUsage struct {
	FromDatetime     string        `json:"from_datetime"`
	ToDatetime       string        `json:"to_datetime"`
	IssuingDate      string        `json:"issuing_date"`
	Currency         string        `json:"currency"`
	AmountCents      int64         `json:"amount_cents"`
	TaxesAmountCents int64         `json:"taxes_amount_cents"`
	TotalAmountCents int64         `json:"total_amount_cents"`
	LagoInvoiceID    *string       `json:"lago_invoice_id"` // always null: usage is not invoiced yet
	ChargesUsage     []ChargeUsage `json:"charges_usage"`
}

// ChargeUsage is one charge of the plan with its usage so far.
type ChargeUsage struct {
	Units          string         `json:"units"` // an exact decimal, as Lago writes it
	EventsCount    uint64         `json:"events_count"`
	AmountCents    int64          `json:"amount_cents"`
	AmountCurrency string         `json:"amount_currency"`
	Charge         Charge         `json:"charge"`
	BillableMetric BillableMetric `json:"billable_metric"`
	Filters        []ChargeFilter `json:"filters"` // always []: Tally charges have no filters
	GroupedUsage   []GroupedUsage `json:"grouped_usage"`
}

// Charge identifies the plan's charge.
type Charge struct {
	LagoID             string  `json:"lago_id"` // the charge id
	ChargeModel        string  `json:"charge_model"`
	InvoiceDisplayName *string `json:"invoice_display_name"`
}

// BillableMetric is the meter the charge prices, in Lago's words. Its
// code is the meter's event_type: in Lago, events carry the code of the
// billable metric that meters them, and Tally's Lago ingestion takes an
// event's code as its type, so an event sent with this code is metered
// by this meter.
type BillableMetric struct {
	LagoID          string `json:"lago_id"` // see MetricID
	Name            string `json:"name"`    // the meter's name, else its key
	Code            string `json:"code"`    // the meter's event_type
	AggregationType string `json:"aggregation_type"`
}

// ChargeFilter is Lago's per-filter usage. Tally charges have no filters,
// so the lists are always empty; the type keeps the element shape
// documented.
type ChargeFilter struct {
	Units              string            `json:"units"`
	EventsCount        uint64            `json:"events_count"`
	AmountCents        int64             `json:"amount_cents"`
	InvoiceDisplayName *string           `json:"invoice_display_name"`
	Values             map[string]string `json:"values"`
}

// GroupedUsage is the usage of one group of a meter with group_by. Its
// amount_cents is the group's share of the charge when the charge is
// split over its groups (a SUM or COUNT meter); a MAX, MIN, LATEST, AVG
// or UNIQUE_COUNT charge is not the sum of its groups, and its groups
// have amount_cents 0, which means "not split", not "free": Lago's typed
// clients (lago-types) require the field, so it cannot be left out. The
// billable metric's aggregation_type tells which.
type GroupedUsage struct {
	AmountCents int64             `json:"amount_cents"`
	EventsCount uint64            `json:"events_count"`
	Units       string            `json:"units"`
	GroupedBy   map[string]string `json:"grouped_by"`
	Filters     []ChargeFilter    `json:"filters"`
}

// timeLayout is how Lago writes its datetimes: RFC 3339 in UTC, whole
// seconds.
const timeLayout = "2006-01-02T15:04:05Z"

// metricNamespace scopes the ids MetricID derives.
var metricNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/tally-oss/tally/billable_metric"))

// MetricID is the lago_id of a meter as a billable metric: a name-based
// UUID (RFC 4122 version 5) of the organization and meter key. Lago's ids
// are UUIDs and typed clients (lago-types) parse them as such; deriving
// it keeps it stable across meter revisions, like a Lago billable metric
// keeps its id when it is edited, and distinct between organizations.
func MetricID(orgID, meterKey string) string {
	return uuid.NewSHA1(metricNamespace, []byte(orgID+"/"+meterKey)).String()
}

// customerUsage maps priced usage onto Lago's shape. period.To is
// exclusive; Lago shows a period's last second ("2022-07-31T23:59:59Z"),
// and its issuing date one day after that, as its documentation does.
func customerUsage(orgID string, u billing.Usage) CustomerUsage {
	inv := u.Invoice
	last := lastSecond(inv.Period)
	out := CustomerUsage{
		FromDatetime:     inv.Period.From.UTC().Format(timeLayout),
		ToDatetime:       last.Format(timeLayout),
		IssuingDate:      last.AddDate(0, 0, 1).Format(timeLayout),
		Currency:         inv.Currency,
		AmountCents:      inv.ChargesTotal.Minor,
		TaxesAmountCents: 0,
		TotalAmountCents: inv.ChargesTotal.Minor,
		ChargesUsage:     make([]ChargeUsage, 0, len(inv.Charges)),
	}
	for _, line := range inv.Charges {
		out.ChargesUsage = append(out.ChargesUsage, chargeUsage(orgID, line, u.Meters[line.Charge.Meter], inv.Currency))
	}
	return out
}

// lastSecond is the last whole second of [p.From, p.To), in UTC.
func lastSecond(p rating.Period) time.Time {
	return p.To.Add(-time.Second).UTC().Truncate(time.Second)
}

func chargeUsage(orgID string, line rating.ChargeLine, meter schemas.Meter, currency string) ChargeUsage {
	c := line.Charge
	cu := ChargeUsage{
		Units:          line.Units.String(),
		EventsCount:    line.Events,
		AmountCents:    line.Amount.Minor,
		AmountCurrency: currency,
		Charge:         Charge{LagoID: c.ID, ChargeModel: string(c.ChargeModel), InvoiceDisplayName: optional(c.InvoiceDisplayName)},
		BillableMetric: billableMetric(orgID, c.Meter, meter),
		Filters:        []ChargeFilter{},
		GroupedUsage:   make([]GroupedUsage, 0, len(line.Groups)),
	}
	for _, g := range line.Groups {
		var amount int64 // 0 unless the charge is split over its groups
		if line.GroupAmounts {
			amount = g.Amount.Minor
		}
		cu.GroupedUsage = append(cu.GroupedUsage, GroupedUsage{
			AmountCents: amount,
			EventsCount: g.Events,
			Units:       g.Units.String(),
			GroupedBy:   g.Values,
			Filters:     []ChargeFilter{},
		})
	}
	return cu
}

// billableMetric describes the charge's meter. A meter deleted since the
// plan was written (meter.Key is empty) keeps its key as name and code,
// with no event type or aggregation type to report.
func billableMetric(orgID, key string, meter schemas.Meter) BillableMetric {
	bm := BillableMetric{LagoID: MetricID(orgID, key), Name: key, Code: key}
	if meter.Name != "" {
		bm.Name = meter.Name
	}
	if meter.EventType != "" {
		bm.Code = meter.EventType
	}
	if spec, err := meter.Aggregation.Spec(); err == nil {
		bm.AggregationType = spec.LagoType
	}
	return bm
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

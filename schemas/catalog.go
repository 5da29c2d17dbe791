package schemas

// The catalog: who is billed (Customer), what they are billed for (Plan
// and its Charges on meters) and since when (Subscription). These are the
// wire and storage shapes shared by the query service, the catalog store
// and the pricing code; like meters, they hold no I/O.
//
// Property names follow Lago's API (its plan, charge and subscription
// objects), so that a Lago integration reads them without translation.
// ParseCustomer, ParsePlan and ParseSubscription read them from API bodies
// (catalog_parse.go); Validate checks values built in Go.

import (
	"time"

	"github.com/shopspring/decimal"
)

// Customer is who usage is billed to. Events name the customer by its
// ExternalID in their customer_id; events of customers not (yet) in the
// catalog are metered all the same.
type Customer struct {
	ExternalID string            `json:"external_id"`
	Name       string            `json:"name,omitempty"`
	Email      string            `json:"email,omitempty"`
	Currency   string            `json:"currency,omitempty"` // ISO 4217
	Timezone   string            `json:"timezone,omitempty"` // IANA
	Metadata   map[string]string `json:"metadata,omitempty"`
	CreatedAt  time.Time         `json:"created_at,omitzero"` // assigned by the store
	UpdatedAt  time.Time         `json:"updated_at,omitzero"` // assigned by the store
}

// Interval is the length of a plan's billing period.
type Interval string

// The billing intervals a plan can have.
const (
	IntervalWeekly    Interval = "weekly"
	IntervalMonthly   Interval = "monthly"
	IntervalQuarterly Interval = "quarterly"
	IntervalYearly    Interval = "yearly"
)

// Intervals lists every valid Interval.
var Intervals = []Interval{IntervalWeekly, IntervalMonthly, IntervalQuarterly, IntervalYearly}

// ChargeModel is how a charge turns a period's units into an amount.
type ChargeModel string

// The charge models, with Lago's names.
const (
	ChargeStandard  ChargeModel = "standard"  // units × amount
	ChargeGraduated ChargeModel = "graduated" // each tier prices the units inside it
	ChargeVolume    ChargeModel = "volume"    // all units at the tier the total reaches
	ChargePackage   ChargeModel = "package"   // amount per started package after free units
)

// ChargeModels lists every valid ChargeModel.
var ChargeModels = []ChargeModel{ChargeStandard, ChargeGraduated, ChargeVolume, ChargePackage}

// Plan is what a subscription bills: a fixed fee per period, usage charges
// on meters, and an optional minimum commitment. Amounts in cents are in
// the currency's minor unit (yen for JPY, fils for BHD).
type Plan struct {
	Code                   string            `json:"code"`
	Name                   string            `json:"name"`
	Description            string            `json:"description,omitempty"`
	Interval               Interval          `json:"interval"`
	AmountCents            int64             `json:"amount_cents"`
	AmountCurrency         string            `json:"amount_currency"` // ISO 4217
	PayInAdvance           bool              `json:"pay_in_advance"`
	MinimumCommitmentCents int64             `json:"minimum_commitment_cents"`
	Metadata               map[string]string `json:"metadata,omitempty"`
	Charges                []Charge          `json:"charges"`
	Revision               uint64            `json:"revision,omitempty"`  // assigned by the store
	CreatedAt              time.Time         `json:"created_at,omitzero"` // assigned by the store
	UpdatedAt              time.Time         `json:"updated_at,omitzero"` // assigned by the store
}

// Charge prices the usage of one meter. ID is assigned by the store when
// absent and kept across plan updates.
type Charge struct {
	ID                 string           `json:"id"`
	Meter              string           `json:"meter"` // a meter key
	ChargeModel        ChargeModel      `json:"charge_model"`
	Properties         ChargeProperties `json:"properties"`
	InvoiceDisplayName string           `json:"invoice_display_name,omitempty"`
}

// ChargeProperties are the parameters of a charge model, with Lago's
// names. Which fields a model needs is checked by Plan validation:
// standard {amount}; graduated {graduated_ranges}; volume {volume_ranges};
// package {amount, package_size, free_units}. Amounts are in major units of
// the plan's currency ("0.05" is five cents) and are exact decimals; they
// are written as JSON strings, as Lago does, and read from strings or
// numbers.
type ChargeProperties struct {
	Amount          *decimal.Decimal `json:"amount,omitempty"`
	GraduatedRanges []Range          `json:"graduated_ranges,omitempty"`
	VolumeRanges    []Range          `json:"volume_ranges,omitempty"`
	PackageSize     *decimal.Decimal `json:"package_size,omitempty"`
	FreeUnits       *decimal.Decimal `json:"free_units,omitempty"`
}

// Range is one tier of a graduated or volume charge. A tier covers the
// units above FromValue up to and including ToValue (nil: no upper bound).
// The first tier starts at 0, each next one where the previous one ends
// (Lago's integer notation, from_value = previous to_value + 1, means the
// same), and only the last is unbounded.
type Range struct {
	FromValue     decimal.Decimal  `json:"from_value"`
	ToValue       *decimal.Decimal `json:"to_value"`
	PerUnitAmount decimal.Decimal  `json:"per_unit_amount"`
	FlatAmount    decimal.Decimal  `json:"flat_amount"`
}

// BillingTime says where a subscription's periods start.
type BillingTime string

// The billing times of a subscription.
const (
	// BillingCalendar periods start at 00:00 on the 1st of the month (the
	// Monday, the quarter's first day, January 1st) in the subscription's
	// time zone; the first period starts at subscription_at.
	BillingCalendar BillingTime = "calendar"
	// BillingAnniversary periods start on the same day of the period as
	// subscription_at, clamped to the month's last day.
	BillingAnniversary BillingTime = "anniversary"
)

// BillingTimes lists every valid BillingTime.
var BillingTimes = []BillingTime{BillingCalendar, BillingAnniversary}

// SubscriptionStatus is derived from a subscription's times, never stored.
type SubscriptionStatus string

// The states of a subscription.
const (
	StatusPending    SubscriptionStatus = "pending"    // before subscription_at
	StatusActive     SubscriptionStatus = "active"     // from subscription_at
	StatusTerminated SubscriptionStatus = "terminated" // terminated, or past ending_at
)

// Subscription puts a customer on a plan from SubscriptionAt until it is
// terminated or reaches EndingAt.
type Subscription struct {
	ExternalID         string             `json:"external_id"`
	ExternalCustomerID string             `json:"external_customer_id"`
	PlanCode           string             `json:"plan_code"`
	Name               string             `json:"name,omitempty"`
	SubscriptionAt     time.Time          `json:"subscription_at"`
	EndingAt           *time.Time         `json:"ending_at"`
	BillingTime        BillingTime        `json:"billing_time"`
	Timezone           string             `json:"timezone"` // IANA; the customer's, else UTC
	TerminatedAt       *time.Time         `json:"terminated_at"`
	Status             SubscriptionStatus `json:"status,omitempty"`    // derived on read, see StatusAt
	CreatedAt          time.Time          `json:"created_at,omitzero"` // assigned by the store
}

// StatusAt returns the subscription's status at now.
func (s Subscription) StatusAt(now time.Time) SubscriptionStatus {
	switch {
	case s.TerminatedAt != nil && !now.Before(*s.TerminatedAt):
		return StatusTerminated
	case s.EndingAt != nil && !now.Before(*s.EndingAt):
		return StatusTerminated
	case now.Before(s.SubscriptionAt):
		return StatusPending
	}
	return StatusActive
}

// EndAt returns when the subscription ends, if it does: the earlier of
// termination and ending_at.
func (s Subscription) EndAt() (time.Time, bool) {
	switch {
	case s.TerminatedAt != nil && s.EndingAt != nil:
		if s.TerminatedAt.Before(*s.EndingAt) {
			return *s.TerminatedAt, true
		}
		return *s.EndingAt, true
	case s.TerminatedAt != nil:
		return *s.TerminatedAt, true
	case s.EndingAt != nil:
		return *s.EndingAt, true
	}
	return time.Time{}, false
}

package measure

import (
	"encoding/json"
)

// The response shapes of Measure's "Get Subscription Usage", field for
// field as its document lists them. No field is omitted: what Tally has
// no notion of is null (pointers, any) or empty. Numbers that come from
// exact decimals are json.Number, never floats.

type usageResponse struct {
	Metric               metric               `json:"metric"`
	ProductMetricPricing productMetricPricing `json:"product_metric_pricing"`
	Usage                []usagePeriod        `json:"usage"`
}

type metric struct {
	CompanyID    string       `json:"company_id"`
	CreatedAt    *string      `json:"created_at"`
	Description  string       `json:"description"`
	ExternalName string       `json:"external_name"`
	ID           string       `json:"id"`
	ItemID       string       `json:"item_id"`
	MeteringRule meteringRule `json:"metering_rule"`
	Name         string       `json:"name"`
	Standard     bool         `json:"standard"`
	Type         string       `json:"type"`
	UpdatedAt    *string      `json:"updated_at"`
}

type meteringRule struct {
	Aggregator string   `json:"aggregator"`
	GroupKeys  []string `json:"group_keys"`
	Property   string   `json:"property"`
	Rule       string   `json:"rule"`
}

type productMetricPricing struct {
	CompanyID     string      `json:"company_id"`
	CreatedAt     *string     `json:"created_at"`
	ID            string      `json:"id"`
	Item          item        `json:"item"`
	ItemID        string      `json:"item_id"`
	ItemPricing   itemPricing `json:"item_pricing"`
	ItemPricingID string      `json:"item_pricing_id"`
	Metric        metric      `json:"metric"`
	MetricID      string      `json:"metric_id"`
	Product       product     `json:"product"`
	ProductID     string      `json:"product_id"`
	UpdatedAt     *string     `json:"updated_at"`
}

type item struct {
	CompanyID    string  `json:"company_id"`
	CreatedAt    *string `json:"created_at"`
	Description  string  `json:"description"`
	DisplayType  *string `json:"display_type"`
	Editable     bool    `json:"editable"`
	ExternalName string  `json:"external_name"`
	ID           string  `json:"id"`
	Name         string  `json:"name"`
	Standard     bool    `json:"standard"`
	Type         string  `json:"type"`
	UpdatedAt    *string `json:"updated_at"`
}

type money struct {
	Currency     string `json:"currency"`
	ValueInCents int64  `json:"value_in_cents"`
}

type itemPricing struct {
	BasePrice            *money            `json:"base_price"`
	BaseUnits            json.Number       `json:"base_units"`
	ChargeType           string            `json:"charge_type"`
	Company              company           `json:"company"`
	CompanyID            string            `json:"company_id"`
	CreatedAt            *string           `json:"created_at"`
	CreditPrice          any               `json:"credit_price"`
	CustomPrice          any               `json:"custom_price"`
	Description          string            `json:"description"`
	DisplayType          *string           `json:"display_type"`
	Editable             bool              `json:"editable"`
	ExternalName         string            `json:"external_name"`
	FixedPrice           *fixedPrice       `json:"fixed_price"`
	Frequency            string            `json:"frequency"`
	GradientPrice        []gradientTier    `json:"gradient_price"`
	ID                   string            `json:"id"`
	Item                 item              `json:"item"`
	ItemID               string            `json:"item_id"`
	Metadata             map[string]string `json:"metadata"`
	MinimumSpend         *money            `json:"minimum_spend"`
	MinimumSpendSchedule any               `json:"minimum_spend_schedule"`
	Name                 string            `json:"name"`
	NumSubs              *int              `json:"num_subs"`
	ProrationType        *string           `json:"proration_type"`
	RecognitionSchedule  any               `json:"recognition_schedule"`
	ScheduledPrice       any               `json:"scheduled_price"`
	State                string            `json:"state"`
	StepPrice            *stepPrice        `json:"step_price"`
	TermCount            *int              `json:"term_count"`
	TrueUpFrequency      *string           `json:"true_up_frequency"`
	Type                 string            `json:"type"`
	UpdatedAt            *string           `json:"updated_at"`
	VolumePrice          []volumeTier      `json:"volume_price"`
}

type fixedPrice struct {
	PricePerUnit json.Number `json:"price_per_unit"`
}

type gradientTier struct {
	End          *json.Number `json:"end"` // null: no upper bound
	FlatPrice    json.Number  `json:"flat_price"`
	IsCustomTier bool         `json:"is_custom_tier"`
	PricePerUnit json.Number  `json:"price_per_unit"`
	Start        json.Number  `json:"start"`
}

type volumeTier struct {
	FlatPrice       json.Number  `json:"flat_price"`
	IsCustomTier    bool         `json:"is_custom_tier"`
	PricePerUnit    json.Number  `json:"price_per_unit"`
	TotalUnitsEnd   *json.Number `json:"total_units_end"` // null: no upper bound
	TotalUnitsStart json.Number  `json:"total_units_start"`
}

type stepPrice struct {
	PricePerStep json.Number `json:"price_per_step"`
	StepSize     json.Number `json:"step_size"`
}

// company is the organization as Measure's company object; Tally knows
// only its id.
type company struct {
	Address              any               `json:"address"`
	ComputedEntitlements map[string]string `json:"computed_entitlements"`
	CreatedAt            *string           `json:"created_at"`
	CustomerID           *string           `json:"customer_id"`
	Demo                 bool              `json:"demo"`
	Email                *string           `json:"email"`
	ID                   string            `json:"id"`
	IsDev                bool              `json:"is_dev"`
	LegalName            *string           `json:"legal_name"`
	Name                 string            `json:"name"`
	Phone                *string           `json:"phone"`
	PreferredCurrency    *string           `json:"preferred_currency"`
	PreferredTimezone    *string           `json:"preferred_timezone"`
	Slug                 string            `json:"slug"`
	UpdatedAt            *string           `json:"updated_at"`
}

type product struct {
	CompanyID          string            `json:"company_id"`
	CreatedAt          *string           `json:"created_at"`
	Description        string            `json:"description"`
	Entitlements       []any             `json:"entitlements"`
	ExternalName       string            `json:"external_name"`
	GLCode             *string           `json:"gl_code"`
	ID                 string            `json:"id"`
	ImageURL           *string           `json:"image_url"`
	ImportCreatedAtRef *string           `json:"import_created_at_ref"`
	ImportRef          *string           `json:"import_ref"`
	ImportedFrom       *string           `json:"imported_from"`
	Metadata           map[string]string `json:"metadata"`
	Name               string            `json:"name"`
	NumSubs            *int              `json:"num_subs"`
	ProductPricings    []any             `json:"product_pricings"`
	State              string            `json:"state"`
	Tags               []string          `json:"tags"`
	UpdatedAt          *string           `json:"updated_at"`
}

type usagePeriod struct {
	Breakdown                  []breakdownEntry `json:"breakdown"`
	Period                     period           `json:"period"`
	SubscriptionMetricRecordID string           `json:"subscription_metric_record_id"`
	Value                      json.Number      `json:"value"`
}

type breakdownEntry struct {
	Breakout map[string]string `json:"breakout"`
	Grouping map[string]string `json:"grouping"`
	Period   period            `json:"period"`
	Value    json.Number       `json:"value"`
}

type period struct {
	EndDate   string `json:"end_date"`
	StartDate string `json:"start_date"`
}

package measure

import (
	"encoding/json"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/schemas"
)

func dec(s string) *decimal.Decimal {
	d := decimal.RequireFromString(s)
	return &d
}

// pricesJSON is the price shapes of an item pricing, as JSON.
func pricesJSON(t *testing.T, ip itemPricing) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"fixed_price": ip.FixedPrice, "gradient_price": ip.GradientPrice, "volume_price": ip.VolumePrice,
		"step_price": ip.StepPrice, "base_units": ip.BaseUnits,
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPriceChargeMapsEveryModel(t *testing.T) {
	ranges := []schemas.Range{
		{FromValue: decimal.Zero, ToValue: dec("100"), PerUnitAmount: decimal.RequireFromString("0.05"), FlatAmount: decimal.RequireFromString("2")},
		{FromValue: decimal.RequireFromString("100"), ToValue: nil, PerUnitAmount: decimal.RequireFromString("0.0125"), FlatAmount: decimal.Zero},
	}
	tests := []struct {
		model schemas.ChargeModel
		props schemas.ChargeProperties
		want  string
	}{
		{schemas.ChargeStandard, schemas.ChargeProperties{Amount: dec("0.001")},
			`{"base_units":0,"fixed_price":{"price_per_unit":0.001},"gradient_price":null,"step_price":null,"volume_price":null}`},
		{schemas.ChargeGraduated, schemas.ChargeProperties{GraduatedRanges: ranges},
			`{"base_units":0,"fixed_price":null,"gradient_price":[` +
				`{"end":100,"flat_price":2,"is_custom_tier":false,"price_per_unit":0.05,"start":0},` +
				`{"end":null,"flat_price":0,"is_custom_tier":false,"price_per_unit":0.0125,"start":100}],` +
				`"step_price":null,"volume_price":null}`},
		{schemas.ChargeVolume, schemas.ChargeProperties{VolumeRanges: ranges},
			`{"base_units":0,"fixed_price":null,"gradient_price":null,"step_price":null,"volume_price":[` +
				`{"flat_price":2,"is_custom_tier":false,"price_per_unit":0.05,"total_units_end":100,"total_units_start":0},` +
				`{"flat_price":0,"is_custom_tier":false,"price_per_unit":0.0125,"total_units_end":null,"total_units_start":100}]}`},
		{schemas.ChargePackage, schemas.ChargeProperties{Amount: dec("5"), PackageSize: dec("1000"), FreeUnits: dec("250")},
			`{"base_units":250,"fixed_price":null,"gradient_price":null,"step_price":{"price_per_step":5,"step_size":1000},"volume_price":null}`},
		{schemas.ChargePackage, schemas.ChargeProperties{Amount: dec("5"), PackageSize: dec("1000")},
			`{"base_units":0,"fixed_price":null,"gradient_price":null,"step_price":{"price_per_step":5,"step_size":1000},"volume_price":null}`},
	}
	covered := map[schemas.ChargeModel]bool{}
	for _, tt := range tests {
		ip := itemPricing{BaseUnits: "0"}
		if err := priceCharge(schemas.Charge{ID: "ch", ChargeModel: tt.model, Properties: tt.props}, &ip); err != nil {
			t.Fatalf("%s: %v", tt.model, err)
		}
		if got := pricesJSON(t, ip); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.model, got, tt.want)
		}
		covered[tt.model] = true
	}
	for _, m := range schemas.ChargeModels {
		if !covered[m] {
			t.Errorf("charge model %s has no case here", m)
		}
	}
}

func TestPriceChargeRefusesWhatItCannotDescribe(t *testing.T) {
	for _, c := range []schemas.Charge{
		{ChargeModel: "percentage", Properties: schemas.ChargeProperties{Amount: dec("1")}},
		{ChargeModel: schemas.ChargeStandard},
		{ChargeModel: schemas.ChargeGraduated},
		{ChargeModel: schemas.ChargeVolume},
		{ChargeModel: schemas.ChargePackage, Properties: schemas.ChargeProperties{Amount: dec("1")}},
	} {
		if err := priceCharge(c, &itemPricing{}); err == nil {
			t.Errorf("%s %+v: no error", c.ChargeModel, c.Properties)
		}
	}
}

func TestEveryIntervalHasAFrequency(t *testing.T) {
	for _, i := range schemas.Intervals {
		if frequencies[i] == "" {
			t.Errorf("interval %s has no frequency", i)
		}
	}
}

func TestMetricOfEveryAggregation(t *testing.T) {
	for _, agg := range schemas.Aggregations {
		def := `{"key": "m", "event_type": "e", "aggregation": "` + string(agg) + `"`
		if agg.NeedsValue() {
			def += `, "value_property": "v"`
		}
		m, err := schemas.ParseMeter([]byte(def + `}`))
		if err != nil {
			t.Fatal(err)
		}
		spec, _ := agg.Spec()
		met, err := metricOf("acme", "m", m, true)
		if err != nil || met.MeteringRule.Aggregator != spec.MeasureName || spec.MeasureName == "" {
			t.Errorf("%s: aggregator %q, %v; want %q", agg, met.MeteringRule.Aggregator, err, spec.MeasureName)
		}
	}
	if _, err := metricOf("acme", "m", schemas.Meter{Key: "m", Aggregation: "MEDIAN"}, true); err == nil {
		t.Error("an unknown aggregation was described")
	}
}

func TestSameCompany(t *testing.T) {
	for _, tt := range []struct {
		companyID, org string
		want           bool
	}{
		{"acme", "acme", true},
		{"cmp_acme", "acme", true},
		{"cmp_cmp_x", "cmp_x", true},
		{"cmp_x", "cmp_x", true},
		{"globex", "acme", false},
		{"cmp_globex", "acme", false},
		{"CMP_acme", "acme", false},
		{"cmp_", "acme", false},
		{"", "acme", false},
	} {
		if got := sameCompany(tt.companyID, tt.org); got != tt.want {
			t.Errorf("sameCompany(%q, %q) = %v", tt.companyID, tt.org, got)
		}
	}
}

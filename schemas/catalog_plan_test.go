package schemas_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/schemas"
)

// planWith returns a valid plan body whose charges are the given JSON.
func planWith(charges ...string) string {
	return `{"code":"pro","name":"Pro","interval":"monthly","amount_currency":"USD","charges":[` +
		strings.Join(charges, ",") + `]}`
}

func mustParsePlan(t *testing.T, body string) schemas.Plan {
	t.Helper()
	p, err := schemas.ParsePlan([]byte(body))
	if err != nil {
		t.Fatalf("ParsePlan(%s): %v", body, err)
	}
	return p
}

func TestParsePlan(t *testing.T) {
	body := `{"code":"pro.v2_eu-1","name":"Pro","description":"For teams","interval":"yearly",
		"amount_cents":120000,"amount_currency":"EUR","pay_in_advance":true,"minimum_commitment_cents":50000,
		"metadata":{"tier":"pro"},"revision":4,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-02T00:00:00Z",
		"charges":[
			{"id":"ch_1","meter":"api-calls","charge_model":"standard","properties":{"amount":"0.0010"},"invoice_display_name":"API calls"},
			{"meter":"storage_gb","charge_model":"package","properties":{"amount":5,"package_size":"100"}},
			{"meter":"tokens","charge_model":"graduated","properties":{"graduated_ranges":[
				{"from_value":0,"to_value":1000,"per_unit_amount":"0","flat_amount":"10"},
				{"from_value":1000,"to_value":null,"per_unit_amount":"0.002"}]}},
			{"meter":"seats","charge_model":"volume","properties":{"volume_ranges":[{"from_value":"0","per_unit_amount":3}]}}]}`
	for _, b := range []string{body, `{"plan":` + body + `}`} {
		p := mustParsePlan(t, b)
		if p.Code != "pro.v2_eu-1" || p.Name != "Pro" || p.Description != "For teams" || p.Interval != schemas.IntervalYearly ||
			p.AmountCents != 120000 || p.AmountCurrency != "EUR" || !p.PayInAdvance || p.MinimumCommitmentCents != 50000 ||
			p.Metadata["tier"] != "pro" || len(p.Charges) != 4 {
			t.Fatalf("ParsePlan = %+v", p)
		}
		if p.Revision != 0 || !p.CreatedAt.IsZero() || !p.UpdatedAt.IsZero() {
			t.Errorf("server-assigned fields were read from the body: %+v", p)
		}
		c := p.Charges
		if c[0].ID != "ch_1" || c[0].Meter != "api-calls" || c[0].ChargeModel != schemas.ChargeStandard ||
			c[0].InvoiceDisplayName != "API calls" || c[0].Properties.Amount.String() != "0.001" {
			t.Errorf("standard charge = %+v", c[0])
		}
		pk := c[1].Properties
		if c[1].ID != "" || pk.Amount.String() != "5" || pk.PackageSize.String() != "100" || pk.FreeUnits == nil || !pk.FreeUnits.IsZero() {
			t.Errorf("package charge = %+v (free_units defaults to 0)", pk)
		}
		gr := c[2].Properties.GraduatedRanges
		if len(gr) != 2 || !gr[0].FlatAmount.Equal(decimal.NewFromInt(10)) || gr[1].ToValue != nil ||
			gr[1].PerUnitAmount.String() != "0.002" || !gr[1].FlatAmount.IsZero() || c[2].Properties.VolumeRanges != nil {
			t.Errorf("graduated charge = %+v", c[2].Properties)
		}
		vr := c[3].Properties.VolumeRanges
		if len(vr) != 1 || vr[0].ToValue != nil || !vr[0].PerUnitAmount.Equal(decimal.NewFromInt(3)) {
			t.Errorf("volume charge = %+v", c[3].Properties)
		}
	}

	// Defaults: no charges is an empty list, amounts are 0.
	p := mustParsePlan(t, `{"code":"free","name":"Free","interval":"weekly","amount_currency":"JPY"}`)
	if p.Charges == nil || len(p.Charges) != 0 || p.AmountCents != 0 || p.MinimumCommitmentCents != 0 || p.PayInAdvance {
		t.Errorf("defaults: %+v", p)
	}
	if out, _ := json.Marshal(p); !strings.Contains(string(out), `"charges":[]`) {
		t.Errorf("a plan without charges marshals as %s", out)
	}
	// Whitespace anywhere JSON allows it.
	spaced := "{ \"code\" : \"p\" ,\n\"name\":\"P\", \"interval\" :\t\"monthly\" , \"amount_currency\":\"USD\", \"amount_cents\" :  5 ,\n" +
		"\"charges\" : [ { \"meter\" : \"m\" , \"charge_model\" : \"standard\" , \"properties\" : { \"amount\" :  0.1  } } ] }"
	if p := mustParsePlan(t, spaced); p.AmountCents != 5 || p.Charges[0].Properties.Amount.String() != "0.1" {
		t.Errorf("spaced plan = %+v", p)
	}
	// Every interval.
	for _, interval := range schemas.Intervals {
		mustParsePlan(t, fmt.Sprintf(`{"code":"p","name":"P","interval":%q,"amount_currency":"USD"}`, interval))
	}
	// Limits at their boundary.
	long := fmt.Sprintf(`{"code":%q,"name":%q,"description":%q,"interval":"monthly","amount_currency":"KWD","charges":[%s]}`,
		"P"+strings.Repeat("x", 127), strings.Repeat("n", 256), strings.Repeat("d", 4096),
		strings.TrimSuffix(strings.Repeat(`{"meter":"m","charge_model":"standard","properties":{"amount":1}},`, schemas.MaxPlanCharges), ","))
	if p := mustParsePlan(t, long); len(p.Charges) != schemas.MaxPlanCharges {
		t.Errorf("%d charges parsed", len(p.Charges))
	}

	std := `{"meter":"m","charge_model":"standard","properties":{"amount":"1"}}`
	checkInvalid(t, []invalidCase{
		{"empty", `{}`, []string{"amount_currency", "code", "interval", "name"}, "is required"},
		{"code pattern", `{"code":"-pro","name":"P","interval":"monthly","amount_currency":"USD"}`, []string{"code"}, "must match"},
		{"code too long", fmt.Sprintf(`{"code":%q,"name":"P","interval":"monthly","amount_currency":"USD"}`, strings.Repeat("p", 129)), []string{"code"}, "must match"},
		{"code with space", `{"code":"pro plan","name":"P","interval":"monthly","amount_currency":"USD"}`, []string{"code"}, "must match"},
		{"name too long", fmt.Sprintf(`{"code":"p","name":%q,"interval":"monthly","amount_currency":"USD"}`, strings.Repeat("n", 257)), []string{"name"}, "at most 256"},
		{"interval", `{"code":"p","name":"P","interval":"daily","amount_currency":"USD"}`, []string{"interval"}, "must be one of"},
		{"interval case", `{"code":"p","name":"P","interval":"Monthly","amount_currency":"USD"}`, []string{"interval"}, "must be one of"},
		{"negative amount_cents", `{"code":"p","name":"P","interval":"monthly","amount_currency":"USD","amount_cents":-1}`, []string{"amount_cents"}, "negative"},
		{"fractional amount_cents", `{"code":"p","name":"P","interval":"monthly","amount_currency":"USD","amount_cents":1.5}`, []string{"amount_cents"}, "integer"},
		{"string amount_cents", `{"code":"p","name":"P","interval":"monthly","amount_currency":"USD","amount_cents":"100"}`, []string{"amount_cents"}, "integer"},
		{"huge amount_cents", `{"code":"p","name":"P","interval":"monthly","amount_currency":"USD","amount_cents":9223372036854775808}`, []string{"amount_cents"}, "integer"},
		{"negative commitment", `{"code":"p","name":"P","interval":"monthly","amount_currency":"USD","minimum_commitment_cents":-5}`, []string{"minimum_commitment_cents"}, "negative"},
		{"currency", `{"code":"p","name":"P","interval":"monthly","amount_currency":"usd"}`, []string{"amount_currency"}, "ISO 4217"},
		{"pay_in_advance", `{"code":"p","name":"P","interval":"monthly","amount_currency":"USD","pay_in_advance":"yes"}`, []string{"pay_in_advance"}, "true or false"},
		{"metadata", `{"code":"p","name":"P","interval":"monthly","amount_currency":"USD","metadata":{"k":1}}`, []string{"metadata.k"}, "string"},
		{"charges not an array", `{"code":"p","name":"P","interval":"monthly","amount_currency":"USD","charges":{}}`, []string{"charges"}, "JSON array"},
		{"too many charges", planWith(strings.TrimSuffix(strings.Repeat(std+",", schemas.MaxPlanCharges+1), ",")), []string{"charges"}, "at most 100"},
		{"unknown plan field", `{"code":"p","name":"P","interval":"monthly","amount_currency":"USD","trial_period":3}`, []string{"trial_period"}, "unknown field"},
		{"lago_id is not ours", `{"plan":{"lago_id":"x","code":"p","name":"P","interval":"monthly","amount_currency":"USD"}}`, []string{"lago_id"}, "unknown field"},

		{"charge not an object", planWith(std, `"m"`, std), []string{"charges[1]"}, "JSON object"},
		{"charge without meter", planWith(`{"charge_model":"standard","properties":{"amount":1}}`), []string{"charges[0].meter"}, "is required"},
		{"meter pattern", planWith(std, `{"meter":"API Calls","charge_model":"standard","properties":{"amount":1}}`), []string{"charges[1].meter"}, "must match"},
		{"charge model", planWith(`{"meter":"m","charge_model":"percentage","properties":{"rate":1}}`), []string{"charges[0].charge_model", "charges[0].properties.rate"}, "must be one of"},
		{"no charge model", planWith(`{"meter":"m","properties":{"amount":1}}`), []string{"charges[0].charge_model"}, "must be one of"},
		{"charge id pattern", planWith(`{"id":"ch 1","meter":"m","charge_model":"standard","properties":{"amount":1}}`), []string{"charges[0].id"}, "must match"},
		{"charge id too long", planWith(fmt.Sprintf(`{"id":%q,"meter":"m","charge_model":"standard","properties":{"amount":1}}`, strings.Repeat("i", 65))), []string{"charges[0].id"}, "must match"},
		{"charge id twice", planWith(`{"id":"a","meter":"m","charge_model":"standard","properties":{"amount":1}}`, std,
			`{"id":"a","meter":"n","charge_model":"standard","properties":{"amount":2}}`), []string{"charges[2].id"}, "charges[0]"},
		{"display name", planWith(fmt.Sprintf(`{"meter":"m","charge_model":"standard","invoice_display_name":%q,"properties":{"amount":1}}`, strings.Repeat("x", 257))),
			[]string{"charges[0].invoice_display_name"}, "at most 256"},
		{"unknown charge field", planWith(`{"meter":"m","billable_metric_code":"m","charge_model":"standard","properties":{"amount":1}}`), []string{"charges[0].billable_metric_code"}, "unknown field"},
		{"properties not an object", planWith(`{"meter":"m","charge_model":"standard","properties":[1]}`), []string{"charges[0].properties"}, "JSON object"},
	}, func(b []byte) error { _, err := schemas.ParsePlan(b); return err })
}

func TestParsePlanChargeProperties(t *testing.T) {
	charge := func(model, props string) string {
		return planWith(fmt.Sprintf(`{"meter":"m","charge_model":%q,"properties":%s}`, model, props))
	}
	for _, body := range []string{
		charge("standard", `{"amount":"0"}`),
		charge("standard", `{"amount":0.000000000001}`),
		charge("standard", `{"amount":"99999999999999999999999999.999999999999"}`),
		charge("standard", `{"amount":"1.500000000000000000"}`), // trailing zeros are not precision
		charge("standard", `{"amount":"1e3"}`),
		charge("standard", `{"amount":"1","graduated_ranges":null,"package_size":null}`),
		charge("package", `{"amount":"2.5","package_size":1,"free_units":0}`),
		charge("package", `{"amount":"2.5","package_size":"1000","free_units":"100"}`),
		charge("package", `{"amount":0,"package_size":10.0}`),
	} {
		mustParsePlan(t, body)
	}
	checkInvalid(t, []invalidCase{
		{"standard without amount", charge("standard", `{}`), []string{"charges[0].properties.amount"}, "is required"},
		{"standard without properties", planWith(`{"meter":"m","charge_model":"standard"}`), []string{"charges[0].properties.amount"}, "is required"},
		{"negative amount", charge("standard", `{"amount":"-0.01"}`), []string{"charges[0].properties.amount"}, "negative"},
		{"amount not a number", charge("standard", `{"amount":"ten"}`), []string{"charges[0].properties.amount"}, "decimal"},
		{"amount true", charge("standard", `{"amount":true}`), []string{"charges[0].properties.amount"}, "decimal"},
		{"amount empty string", charge("standard", `{"amount":""}`), []string{"charges[0].properties.amount"}, "decimal"},
		{"amount with spaces", charge("standard", `{"amount":" 1"}`), []string{"charges[0].properties.amount"}, "decimal"},
		{"amount with plus", charge("standard", `{"amount":"+1"}`), []string{"charges[0].properties.amount"}, "decimal"},
		{"amount .5", charge("standard", `{"amount":".5"}`), []string{"charges[0].properties.amount"}, "decimal"},
		{"amount NaN", charge("standard", `{"amount":"NaN"}`), []string{"charges[0].properties.amount"}, "decimal"},
		{"13 fractional digits", charge("standard", `{"amount":"0.0000000000001"}`), []string{"charges[0].properties.amount"}, "more than 12 digits after the decimal point"},
		{"13 fractional digits unquoted", charge("standard", `{"amount":0.0000000000001}`), []string{"charges[0].properties.amount"}, "more than 12 digits after"},
		{"27 integer digits", charge("standard", `{"amount":"100000000000000000000000000"}`), []string{"charges[0].properties.amount"}, "more than 26 digits before the decimal point"},
		{"exponent", charge("standard", `{"amount":"1e26"}`), []string{"charges[0].properties.amount"}, "more than 26 digits before"},
		{"tiny exponent", charge("standard", `{"amount":"1e-9999"}`), []string{"charges[0].properties.amount"}, "more than 12 digits after"},
		{"decimal text too long", charge("standard", `{"amount":"1`+strings.Repeat("0", 100)+`e-100"}`), []string{"charges[0].properties.amount"}, "at most 100"},
		{"exponent out of range", charge("standard", `{"amount":"1e-99999"}`), []string{"charges[0].properties.amount"}, "out of range"},
		{"unused property", charge("standard", `{"amount":"1","volume_ranges":[]}`), []string{"charges[0].properties.volume_ranges"}, "not used by the standard model"},
		{"unused properties", charge("standard", `{"amount":"1","package_size":10,"free_units":1}`),
			[]string{"charges[0].properties.free_units", "charges[0].properties.package_size"}, "not used"},
		{"unknown property", charge("standard", `{"amount":"1","grouped_by":["region"]}`), []string{"charges[0].properties.grouped_by"}, "unknown field"},
		{"package without size", charge("package", `{"amount":"1"}`), []string{"charges[0].properties.package_size"}, "is required"},
		{"package without amount", charge("package", `{"package_size":10}`), []string{"charges[0].properties.amount"}, "is required"},
		{"package size 0", charge("package", `{"amount":"1","package_size":0}`), []string{"charges[0].properties.package_size"}, "at least 1"},
		{"package size fraction", charge("package", `{"amount":"1","package_size":"2.5"}`), []string{"charges[0].properties.package_size"}, "whole number"},
		{"negative free units", charge("package", `{"amount":"1","package_size":10,"free_units":-1}`), []string{"charges[0].properties.free_units"}, "negative"},
		{"fractional free units", charge("package", `{"amount":"1","package_size":10,"free_units":0.5}`), []string{"charges[0].properties.free_units"}, "whole number"},
		{"package with ranges", charge("package", `{"amount":"1","package_size":10,"graduated_ranges":[{"from_value":0}]}`),
			[]string{"charges[0].properties.graduated_ranges"}, "not used by the package model"},
		{"graduated with amount", charge("graduated", `{"amount":"1","graduated_ranges":[{"from_value":0}]}`), []string{"charges[0].properties.amount"}, "not used by the graduated model"},
		{"graduated with volume ranges", charge("graduated", `{"volume_ranges":[{"from_value":0}]}`),
			[]string{"charges[0].properties.graduated_ranges", "charges[0].properties.volume_ranges"}, "not used"},
		{"volume without ranges", charge("volume", `{}`), []string{"charges[0].properties.volume_ranges"}, "is required"},
		{"graduated empty ranges", charge("graduated", `{"graduated_ranges":[]}`), []string{"charges[0].properties.graduated_ranges"}, "is required"},
	}, func(b []byte) error { _, err := schemas.ParsePlan(b); return err })
}

// A JSON number is read by decimal's parser, never through float64: 0.1
// and "0.1" are the same exact value.
func TestParsePlanDecimalsAreExact(t *testing.T) {
	for _, tc := range []struct{ quoted, unquoted, want string }{
		{`"0.1"`, `0.1`, "0.1"},
		{`"0.3"`, `0.30`, "0.3"},
		{`"123456789012345678901234.123456789012"`, `123456789012345678901234.123456789012`, "123456789012345678901234.123456789012"},
		{`"0.000000000001"`, `1e-12`, "0.000000000001"},
		{`"9007199254740993"`, `9007199254740993`, "9007199254740993"}, // 2^53+1, not a float64
	} {
		var got [2]decimal.Decimal
		for i, amount := range []string{tc.quoted, tc.unquoted} {
			p := mustParsePlan(t, planWith(`{"meter":"m","charge_model":"standard","properties":{"amount":`+amount+`}}`))
			got[i] = *p.Charges[0].Properties.Amount
		}
		if got[0].String() != tc.want || got[1].String() != tc.want || !got[0].Equal(got[1]) {
			t.Errorf("%s and %s parsed as %s and %s, want %s", tc.quoted, tc.unquoted, got[0], got[1], tc.want)
		}
		if got[0].Exponent() != got[1].Exponent() {
			t.Errorf("%s and %s are stored differently: %v, %v", tc.quoted, tc.unquoted, got[0].Exponent(), got[1].Exponent())
		}
	}
	// Amounts are written back as strings, as Lago does.
	p := mustParsePlan(t, planWith(`{"meter":"m","charge_model":"standard","properties":{"amount":0.10}}`))
	if out, _ := json.Marshal(p.Charges[0].Properties); string(out) != `{"amount":"0.1"}` {
		t.Errorf("properties marshal as %s", out)
	}
}

// Every charge model has its properties table and a validation, so that a
// new model cannot be accepted without rules.
func TestParsePlanEveryChargeModel(t *testing.T) {
	valid := map[schemas.ChargeModel]string{
		schemas.ChargeStandard:  `{"amount":"1"}`,
		schemas.ChargeGraduated: `{"graduated_ranges":[{"from_value":0,"to_value":10},{"from_value":10}]}`,
		schemas.ChargeVolume:    `{"volume_ranges":[{"from_value":0,"to_value":10},{"from_value":11}]}`,
		schemas.ChargePackage:   `{"amount":"1","package_size":10}`,
	}
	for _, model := range schemas.ChargeModels {
		props, ok := valid[model]
		if !ok {
			t.Errorf("no test of charge model %s", model)
			continue
		}
		mustParsePlan(t, planWith(fmt.Sprintf(`{"meter":"m","charge_model":%q,"properties":%s}`, model, props)))
		_, err := schemas.ParsePlan([]byte(planWith(fmt.Sprintf(`{"meter":"m","charge_model":%q,"properties":{}}`, model))))
		if err == nil {
			t.Errorf("charge model %s accepted empty properties", model)
		}
	}
}

func TestPlanValidate(t *testing.T) {
	one, ten := decimal.NewFromInt(1), decimal.NewFromInt(10)
	p := schemas.Plan{Code: "go", Name: "Built in Go", Interval: schemas.IntervalMonthly, AmountCurrency: "JPY",
		Charges: []schemas.Charge{
			{Meter: "m", ChargeModel: schemas.ChargePackage, Properties: schemas.ChargeProperties{Amount: &one, PackageSize: &ten}},
			{Meter: "m", ChargeModel: schemas.ChargeVolume, Properties: schemas.ChargeProperties{
				VolumeRanges: []schemas.Range{{ToValue: &ten}, {FromValue: ten}}}},
		}}
	if err := p.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	tiny := decimal.New(1, -1_000_000_000) // refused without expanding 10^9 digits
	huge := decimal.New(1, 1_000_000_000)
	bad := schemas.Plan{Code: "go", Name: "x", Interval: schemas.IntervalMonthly, AmountCurrency: "USD", AmountCents: -1,
		Charges: []schemas.Charge{
			{Meter: "m", ChargeModel: schemas.ChargeStandard, Properties: schemas.ChargeProperties{Amount: &tiny}},
			{Meter: "m", ChargeModel: schemas.ChargeStandard, Properties: schemas.ChargeProperties{Amount: &huge, GraduatedRanges: []schemas.Range{}}},
		}}
	want := []string{"amount_cents", "charges[0].properties.amount", "charges[1].properties.amount", "charges[1].properties.graduated_ranges"}
	if got := errorFields(t, bad.Validate()); !slices.Equal(got, want) {
		t.Errorf("Validate names %q, want %q", got, want)
	}
}

package measure

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// missingFields returns the paths of fields of seed that got lacks. Where
// got has null, or an empty array, there is nothing below to compare.
func missingFields(seed, got any, path string) []string {
	var out []string
	switch s := seed.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return nil // null where the seed has an object
		}
		for k, v := range s {
			gv, ok := g[k]
			if !ok {
				out = append(out, path+"."+k)
				continue
			}
			out = append(out, missingFields(v, gv, path+"."+k)...)
		}
	case []any:
		g, ok := got.([]any)
		if ok && len(s) > 0 && len(g) > 0 {
			for i := range g {
				out = append(out, missingFields(s[0], g[i], fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	return out
}

func decodeAny(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// at returns the value at a dotted path of a decoded JSON object.
func at(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// TestResponseHasEveryFieldOfTheSeed posts the seed's request (with this
// subscription's charge and a real range) and checks that every field of
// the seed's response example exists in the answer, at every depth, and
// what Tally maps onto the fields it has.
func TestResponseHasEveryFieldOfTheSeed(t *testing.T) {
	e := newEnv(t)
	f := setup(e)
	e.insert(f.tokensAt("a", "2026-03-03T12:00:00Z", "42", "us"))
	raw, err := os.ReadFile("testdata/seed-request.json")
	if err != nil {
		t.Fatal(err)
	}
	req := strings.NewReplacer(`"<string>"`, `"ch_tokens"`,
		`"end_date": "2023-11-07T05:31:56Z"`, `"end_date": "2026-04-01T04:00:00Z"`,
		`"start_date": "2023-11-07T05:31:56Z"`, `"start_date": "2026-02-15T05:00:00Z"`).Replace(string(raw))
	code, body, _ := e.post(keyAcme, acmeUsagePath, req)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	seedRaw, err := os.ReadFile("testdata/seed-response.json")
	if err != nil {
		t.Fatal(err)
	}
	seed, got := decodeAny(t, seedRaw), decodeAny(t, body)
	if missing := missingFields(seed, got, "$"); len(missing) > 0 {
		slices.Sort(missing)
		t.Errorf("fields of the seed missing from the response:\n%s", strings.Join(missing, "\n"))
	}

	for path, want := range map[string]string{
		"metric.id":                                                         "tokens",
		"metric.company_id":                                                 "cmp_acme",
		"metric.name":                                                       "LLM tokens",
		"metric.description":                                                "Tokens generated",
		"metric.metering_rule.aggregator":                                   "sum",
		"metric.metering_rule.group_keys":                                   "[region]",
		"metric.metering_rule.property":                                     "$.tokens", // value_property as the meter holds it
		"metric.metering_rule.rule":                                         `{"status":{"eq":"ok"}}`,
		"metric.standard":                                                   "false",
		"metric.type":                                                       "USAGE",
		"product_metric_pricing.id":                                         "ch_tokens",
		"product_metric_pricing.product_id":                                 "pro",
		"product_metric_pricing.product.name":                               "Pro",
		"product_metric_pricing.product.metadata":                           "map[tier:2]",
		"product_metric_pricing.metric_id":                                  "tokens",
		"product_metric_pricing.item_id":                                    "tokens",
		"product_metric_pricing.item_pricing.name":                          "Tokens",
		"product_metric_pricing.item_pricing.frequency":                     "MONTH",
		"product_metric_pricing.item_pricing.base_price":                    "map[currency:USD value_in_cents:4900]",
		"product_metric_pricing.item_pricing.minimum_spend":                 "map[currency:USD value_in_cents:10000]",
		"product_metric_pricing.item_pricing.gradient_price":                "[map[end:1000 flat_price:1 is_custom_tier:false price_per_unit:0.01 start:0] map[end:<nil> flat_price:0 is_custom_tier:false price_per_unit:0.005 start:1000]]",
		"product_metric_pricing.item_pricing.volume_price":                  "<nil>",
		"product_metric_pricing.item_pricing.step_price":                    "<nil>",
		"product_metric_pricing.item_pricing.fixed_price":                   "<nil>",
		"product_metric_pricing.item_pricing.company.id":                    "cmp_acme",
		"product_metric_pricing.item_pricing.company.address":               "<nil>",
		"product_metric_pricing.item_pricing.charge_type":                   "POST_PAYMENT",
		"product_metric_pricing.metric.metering_rule.aggregator":            "sum",
		"product_metric_pricing.product.entitlements":                       "[]",
		"product_metric_pricing.item_pricing.company.computed_entitlements": "map[]",
	} {
		if got := fmt.Sprint(at(got, path)); got != want {
			t.Errorf("%s = %s, want %s", path, got, want)
		}
	}
	usage, _ := at(got, "usage").([]any)
	if len(usage) != 2 || fmt.Sprint(at(usage[1], "value")) != "42" {
		t.Errorf("usage %v, want February (0) and March (42)", usage)
	}
}

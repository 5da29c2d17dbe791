package schemas_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tally-oss/tally/schemas"
)

// tieredPlan returns a plan with one charge of model whose ranges are the
// given tiers, each written as JSON members ("from_value":0,"to_value":10).
func tieredPlan(model schemas.ChargeModel, tiers ...string) string {
	name := "graduated_ranges"
	if model == schemas.ChargeVolume {
		name = "volume_ranges"
	}
	return planWith(fmt.Sprintf(`{"meter":"m","charge_model":%q,"properties":{%q:[{%s}]}}`,
		model, name, strings.Join(tiers, "},{")))
}

func TestParsePlanTiers(t *testing.T) {
	for _, model := range []schemas.ChargeModel{schemas.ChargeGraduated, schemas.ChargeVolume} {
		t.Run(string(model), func(t *testing.T) {
			testTiers(t, model)
		})
	}
}

func testTiers(t *testing.T, model schemas.ChargeModel) {
	for _, tc := range []struct {
		name  string
		tiers []string
	}{
		{"one unbounded tier", []string{`"from_value":0,"to_value":null,"per_unit_amount":"0.5"`}},
		{"to_value absent on the last tier", []string{`"from_value":0`}},
		{"continuous", []string{`"from_value":0,"to_value":100`, `"from_value":100,"to_value":1000`, `"from_value":1000`}},
		{"Lago integer notation", []string{`"from_value":0,"to_value":100`, `"from_value":101,"to_value":1000`, `"from_value":1001,"to_value":null`}},
		{"notations mixed", []string{`"from_value":0,"to_value":100`, `"from_value":101,"to_value":1000`, `"from_value":1000`}},
		{"one-unit tier in Lago notation", []string{`"from_value":0,"to_value":10`, `"from_value":11,"to_value":11`, `"from_value":12`}},
		{"fractional boundaries", []string{`"from_value":0,"to_value":0.5`, `"from_value":"0.5","to_value":"2.25"`, `"from_value":2.25`}},
		{"string boundaries", []string{`"from_value":"0","to_value":"10"`, `"from_value":"11"`}},
		{"amounts", []string{`"from_value":0,"to_value":10,"per_unit_amount":"0","flat_amount":"100.5"`, `"from_value":10,"per_unit_amount":"0.000000000001","flat_amount":0`}},
		{"nulls are defaults", []string{`"from_value":0,"to_value":null,"per_unit_amount":null,"flat_amount":null`}},
		{"100 tiers", hundredTiers(100)},
	} {
		p, err := schemas.ParsePlan([]byte(tieredPlan(model, tc.tiers...)))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		ranges := p.Charges[0].Properties.GraduatedRanges
		if model == schemas.ChargeVolume {
			ranges = p.Charges[0].Properties.VolumeRanges
		}
		if len(ranges) != len(tc.tiers) || ranges[len(ranges)-1].ToValue != nil {
			t.Errorf("%s: ranges %+v", tc.name, ranges)
		}
	}
	// Lago's notation is kept as written: pricing takes lower bounds from
	// the previous to_value.
	p := mustParsePlan(t, tieredPlan(model, `"from_value":0,"to_value":100`, `"from_value":101`))
	ranges := append(p.Charges[0].Properties.GraduatedRanges, p.Charges[0].Properties.VolumeRanges...)
	if ranges[1].FromValue.String() != "101" || ranges[0].ToValue.String() != "100" {
		t.Errorf("Lago notation rewritten: %+v", ranges)
	}

	field := "charges[0].properties." + map[schemas.ChargeModel]string{
		schemas.ChargeGraduated: "graduated_ranges", schemas.ChargeVolume: "volume_ranges"}[model]
	tier := func(i int, member string) string { return fmt.Sprintf("%s[%d].%s", field, i, member) }
	var cases []invalidCase
	for _, tc := range []struct {
		name   string
		tiers  []string
		fields []string
		msg    string
	}{
		{"gap", []string{`"from_value":0,"to_value":100`, `"from_value":150`}, []string{tier(1, "from_value")}, "gap"},
		{"gap of 2 in integer notation", []string{`"from_value":0,"to_value":100`, `"from_value":102`}, []string{tier(1, "from_value")}, "gap"},
		{"gap after a fractional end", []string{`"from_value":0,"to_value":0.5`, `"from_value":1.5`}, []string{tier(1, "from_value")}, "gap"},
		{"fractional start after an integer end", []string{`"from_value":0,"to_value":10`, `"from_value":10.5`}, []string{tier(1, "from_value")}, "gap"},
		{"overlap", []string{`"from_value":0,"to_value":100`, `"from_value":50,"to_value":200`, `"from_value":200`}, []string{tier(1, "from_value")}, "overlap"},
		{"overlap later", []string{`"from_value":0,"to_value":100`, `"from_value":100,"to_value":200`, `"from_value":199`}, []string{tier(2, "from_value")}, "overlap"},
		{"unbounded middle tier", []string{`"from_value":0,"to_value":100`, `"from_value":100`, `"from_value":200`}, []string{tier(1, "to_value")}, "only the last tier is unbounded"},
		{"bounded last tier", []string{`"from_value":0,"to_value":100`, `"from_value":100,"to_value":200`}, []string{tier(1, "to_value")}, "must be null"},
		{"first not at 0", []string{`"from_value":1,"to_value":100`, `"from_value":100`}, []string{tier(0, "from_value")}, "must be 0"},
		{"first negative", []string{`"from_value":-1,"to_value":100`, `"from_value":100`}, []string{tier(0, "from_value")}, "negative"},
		{"from_value missing", []string{`"to_value":100`, `"from_value":100`}, []string{tier(0, "from_value")}, "is required"},
		{"from_value null", []string{`"from_value":null`}, []string{tier(0, "from_value")}, "is required"},
		{"empty first tier", []string{`"from_value":0,"to_value":0`, `"from_value":0`}, []string{tier(0, "to_value")}, "greater than 0"},
		{"to_value below from_value", []string{`"from_value":0,"to_value":100`, `"from_value":100,"to_value":50`, `"from_value":50`}, []string{tier(1, "to_value")}, "greater than 100"},
		{"to_value below a Lago from_value", []string{`"from_value":0,"to_value":10`, `"from_value":11,"to_value":10.5`, `"from_value":10.5`}, []string{tier(1, "to_value")}, "not be less than from_value"},
		{"negative per_unit_amount", []string{`"from_value":0,"per_unit_amount":"-1"`}, []string{tier(0, "per_unit_amount")}, "negative"},
		{"negative flat_amount", []string{`"from_value":0,"flat_amount":-0.5`}, []string{tier(0, "flat_amount")}, "negative"},
		{"13 fractional digits in a bound", []string{`"from_value":0,"to_value":"0.0000000000001"`, `"from_value":"0.0000000000001"`},
			[]string{tier(0, "to_value"), tier(1, "from_value")}, "more than 12 digits after"},
		{"27 integer digits in an amount", []string{`"from_value":0,"per_unit_amount":"123456789012345678901234567"`}, []string{tier(0, "per_unit_amount")}, "more than 26 digits before"},
		{"bound not a number", []string{`"from_value":"zero"`}, []string{tier(0, "from_value")}, "decimal"},
		{"unknown tier field", []string{`"from_value":0,"unit_amount":"1"`}, []string{tier(0, "unit_amount")}, "unknown field"},
		{"tier not an object", []string{`"from_value":0,"to_value":1},5,{"from_value":1`}, []string{fmt.Sprintf("%s[1]", field)}, "JSON object"},
		{"101 tiers", hundredTiers(101), []string{field}, "at most 100"},
		{"every problem", []string{`"from_value":5,"to_value":100`, `"from_value":150`, `"from_value":50,"to_value":40`},
			[]string{tier(0, "from_value"), tier(1, "from_value"), tier(1, "to_value"), tier(2, "to_value")}, "must be 0"},
	} {
		cases = append(cases, invalidCase{tc.name, tieredPlan(model, tc.tiers...), tc.fields, tc.msg})
	}
	checkInvalid(t, cases, func(b []byte) error { _, err := schemas.ParsePlan(b); return err })
}

// hundredTiers returns n continuous tiers of width 10 in integer notation.
func hundredTiers(n int) []string {
	tiers := make([]string, n)
	for i := range n {
		from := 10*i + 1
		if i == 0 {
			from = 0
		}
		tiers[i] = fmt.Sprintf(`"from_value":%d,"to_value":%d`, from, 10*(i+1))
		if i == n-1 {
			tiers[i] = fmt.Sprintf(`"from_value":%d`, from)
		}
	}
	return tiers
}

package schemas_test

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tally-oss/tally/schemas"
)

func TestParsePath(t *testing.T) {
	deepest := "$" + strings.Repeat(".a", 16)
	for _, tc := range []struct {
		in, want string // want "" means an error
	}{
		{"$.tokens", "$.tokens"},
		{"tokens", "$.tokens"},
		{"$.usage.tokens", "$.usage.tokens"},
		{"usage.tokens", "$.usage.tokens"},
		{"$.a-b_c:d@e.0", "$.a-b_c:d@e.0"},
		{"$.and", "$.and"},
		{"$.123", "$.123"},
		{deepest, deepest},
		{"$." + strings.Repeat("x", 128), "$." + strings.Repeat("x", 128)},

		{"", ""},
		{"$", ""},
		{"$.", ""},
		{"$tokens", ""},
		{"$$.tokens", ""},
		{"$..tokens", ""},
		{"$.usage..tokens", ""},
		{"$.tokens.", ""},
		{".tokens", ""},
		{"usage.", ""},
		{"$.a b", ""},
		{"$.a[0]", ""},
		{"$.a.*", ""},
		{"$.a.$", ""},
		{"$['a']", ""},
		{"$.é", ""},
		{"$.a/b", ""},
		{" $.a", ""},
		{"$.a ", ""},
		{deepest + ".a", ""},
		{"$." + strings.Repeat("x", 129), ""},
	} {
		p, err := schemas.ParsePath(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParsePath(%q) = %q, want an error", tc.in, p)
		case tc.want == "":
			if !strings.Contains(err.Error(), strconv.Quote(tc.in)) {
				t.Errorf("ParsePath(%q) error %q should quote the path", tc.in, err)
			}
			if p.String() != "" || !p.IsZero() {
				t.Errorf("ParsePath(%q) error %v returned a non-zero path %q", tc.in, err, p)
			}
		case err != nil:
			t.Errorf("ParsePath(%q): %v", tc.in, err)
		case p.String() != tc.want || p.IsZero():
			t.Errorf("ParsePath(%q) = %q (zero %v), want %q", tc.in, p, p.IsZero(), tc.want)
		}
	}
	if !(schemas.Path{}).IsZero() {
		t.Error("the zero Path is not IsZero")
	}
}

func TestPathLookup(t *testing.T) {
	props := mustProps(t, `{
		"tokens": 12.50,
		"zero": 0,
		"empty": "",
		"no": false,
		"nothing": null,
		"list": [1, 2],
		"obj": {},
		"usage": {"input": {"tokens": 7}, "model": "gpt", "gone": null},
		"text": "abc",
		"and": "literal"
	}`)
	for _, tc := range []struct {
		path    string
		want    any
		present bool
	}{
		{"tokens", json.Number("12.50"), true},
		{"$.zero", json.Number("0"), true},
		{"$.empty", "", true},
		{"$.no", false, true},
		{"$.nothing", nil, false},
		{"$.missing", nil, false},
		{"$.list", []any{json.Number("1"), json.Number("2")}, true},
		{"$.obj", map[string]any{}, true},
		{"$.usage.input.tokens", json.Number("7"), true},
		{"$.usage.model", "gpt", true},
		{"$.usage.gone", nil, false},
		{"$.usage.missing", nil, false},
		{"$.usage.input.tokens.deeper", nil, false},
		{"$.text.length", nil, false},
		{"$.list.0", nil, false},
		{"$.nothing.below", nil, false},
		{"$.missing.below", nil, false},
		{"$.and", "literal", true},
		{"$.Tokens", nil, false}, // names are case-sensitive
	} {
		p, err := schemas.ParsePath(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		got, present := p.Lookup(props)
		if present != tc.present || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Lookup(%s) = %#v, %v; want %#v, %v", tc.path, got, present, tc.want, tc.present)
		}
	}
	p, _ := schemas.ParsePath("$.a")
	if v, ok := p.Lookup(nil); ok || v != nil {
		t.Errorf("Lookup in nil properties = %v, %v", v, ok)
	}
}

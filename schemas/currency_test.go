package schemas_test

import (
	"slices"
	"testing"

	"github.com/tally-oss/tally/schemas"
)

func TestCurrencyExponent(t *testing.T) {
	for _, tc := range []struct {
		code     string
		exponent int32
		ok       bool
	}{
		{"USD", 2, true},
		{"EUR", 2, true},
		{"GBP", 2, true},
		{"CHF", 2, true},
		{"JPY", 0, true},
		{"KRW", 0, true},
		{"ISK", 0, true},
		{"VND", 0, true},
		{"XOF", 0, true},
		{"UYI", 0, true}, // a funds code with a minor unit
		{"BHD", 3, true},
		{"KWD", 3, true},
		{"JOD", 3, true},
		{"OMR", 3, true},
		{"TND", 3, true},
		{"LYD", 3, true},
		{"IQD", 3, true},
		{"CLF", 4, true},
		{"UYW", 4, true},
		{"XCG", 2, true}, // Caribbean guilder, replaced ANG
		{"ZWG", 2, true}, // Zimbabwe Gold, replaced ZWL
		{"SLE", 2, true},
		{"VES", 2, true},
		{"USN", 2, true},

		{"usd", 0, false}, // codes are upper case, never folded
		{"Usd", 0, false},
		{"ABC", 0, false},
		{"", 0, false},
		{"US", 0, false},
		{"USDD", 0, false},
		{" USD", 0, false},
		{"XAU", 0, false}, // no minor unit
		{"XAG", 0, false},
		{"XPT", 0, false},
		{"XPD", 0, false},
		{"XDR", 0, false},
		{"XTS", 0, false},
		{"XXX", 0, false},
		{"ANG", 0, false}, // withdrawn
		{"BGN", 0, false},
		{"ZWL", 0, false},
		{"HRK", 0, false},
		{"SLL", 0, false},
		{"VEF", 0, false},
		{"MRO", 0, false},
	} {
		exponent, ok := schemas.CurrencyExponent(tc.code)
		if exponent != tc.exponent || ok != tc.ok {
			t.Errorf("CurrencyExponent(%q) = %d, %v; want %d, %v", tc.code, exponent, ok, tc.exponent, tc.ok)
		}
		if valid := schemas.ValidCurrency(tc.code); valid != tc.ok {
			t.Errorf("ValidCurrency(%q) = %v, want %v", tc.code, valid, tc.ok)
		}
	}
}

func TestCurrenciesTable(t *testing.T) {
	codes := schemas.Currencies()
	if len(codes) < 155 || len(codes) > 180 {
		t.Errorf("%d currencies; ISO 4217 lists about 165 with a minor unit", len(codes))
	}
	if !slices.IsSorted(codes) {
		t.Errorf("Currencies() is not sorted")
	}
	counts := map[int32]int{}
	for _, code := range codes {
		if len(code) != 3 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z' || code[2] < 'A' || code[2] > 'Z' {
			t.Errorf("%q is not three upper-case letters", code)
		}
		exponent, ok := schemas.CurrencyExponent(code)
		if !ok || !schemas.ValidCurrency(code) {
			t.Errorf("listed currency %s is not valid", code)
		}
		counts[exponent]++
	}
	// Most currencies have cents; the exceptions are few and well known.
	want := map[int32]int{0: 17, 3: 7, 4: 2}
	for exponent, n := range want {
		if counts[exponent] != n {
			t.Errorf("%d currencies with exponent %d, want %d", counts[exponent], exponent, n)
		}
	}
	if counts[0]+counts[2]+counts[3]+counts[4] != len(codes) {
		t.Errorf("exponents other than 0, 2, 3, 4: %v", counts)
	}
}

package schemas

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Currencies are ISO 4217 alphabetic codes. Plan amounts in cents
// (amount_cents, minimum_commitment_cents) are counted in the currency's
// minor unit, 10^-exponent of the major unit: cents for USD (2), yen for
// JPY (0), fils for BHD (3), ten-thousandths for CLF (4). Pricing needs the
// exponent to turn decimal charge amounts into those units, so a code is
// valid only when its exponent is known.
//
// The table follows ISO 4217 List One (current currencies and funds) as of
// 2026:
//   - Included: every national currency, and the funds codes that have a
//     minor unit (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW).
//   - Excluded: codes whose minor unit ISO lists as "N.A.": precious metals
//     (XAU, XAG, XPT, XPD), bond-market and accounting units (XBA, XBB, XBC,
//     XBD, XDR, XSU, XUA, XAD), and the testing and "no currency" codes XTS
//     and XXX. Nothing can be billed in cents of these.
//   - Excluded: withdrawn codes, including the recent ones ANG (replaced by
//     XCG in 2025), BGN (Bulgaria adopted the euro in 2026), ZWL (replaced
//     by ZWG in 2024), HRK and SLL.
//
// Only upper-case codes are valid: "usd" is refused rather than folded, so
// that a stored code always compares equal to what the API returns.

// The currencies grouped by exponent; every code not listed under 0, 3 or
// 4 has exponent 2.
const (
	currenciesExponent0 = `BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF`
	currenciesExponent2 = `AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD
		BTN BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD
		EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR
		IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP
		MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN
		QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB
		TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW
		ZWG`
	currenciesExponent3 = `BHD IQD JOD KWD LYD OMR TND`
	currenciesExponent4 = `CLF UYW`
)

var currencyExponents = buildCurrencyExponents(map[int32]string{
	0: currenciesExponent0,
	2: currenciesExponent2,
	3: currenciesExponent3,
	4: currenciesExponent4,
})

func buildCurrencyExponents(byExponent map[int32]string) map[string]int32 {
	table := make(map[string]int32, 170)
	for exponent, codes := range byExponent {
		for _, code := range strings.Fields(codes) {
			if _, dup := table[code]; dup {
				panic(fmt.Sprintf("schemas: currency %s listed twice", code))
			}
			table[code] = exponent
		}
	}
	return table
}

// CurrencyExponent returns the ISO 4217 minor-unit exponent of an
// upper-case currency code: 2 for USD, 0 for JPY, 3 for BHD. ok is false for
// unknown, withdrawn or lower-case codes and for codes without a minor unit
// (see the table's notes above).
func CurrencyExponent(code string) (exponent int32, ok bool) {
	exponent, ok = currencyExponents[code]
	return exponent, ok
}

// ValidCurrency reports whether code is a currency a plan or customer can
// use: an active ISO 4217 code, upper case, with a minor unit.
func ValidCurrency(code string) bool {
	_, ok := currencyExponents[code]
	return ok
}

// Currencies returns every code ValidCurrency accepts, sorted; for
// documentation (an OpenAPI enum) and tests.
func Currencies() []string {
	return slices.Sorted(maps.Keys(currencyExponents))
}

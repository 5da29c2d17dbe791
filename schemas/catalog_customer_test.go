package schemas_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/tally-oss/tally/schemas"
)

// invalidCase is a body a parser must refuse, with every field the errors
// must name (and no other) and a fragment one of the messages must hold.
type invalidCase struct {
	name   string
	body   string
	fields []string
	msg    string
}

// checkInvalid runs parse on each case and checks the fields its error names.
func checkInvalid(t *testing.T, cases []invalidCase, parse func([]byte) error) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := parse([]byte(tc.body))
			if err == nil {
				t.Fatalf("accepted %s", tc.body)
			}
			want := slices.Clone(tc.fields)
			slices.Sort(want)
			if got := errorFields(t, err); !slices.Equal(got, want) {
				t.Errorf("error names %q, want %q:\n%v", got, want, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

func TestParseCustomer(t *testing.T) {
	full := `{"external_id":"cus_1","name":"Acme","email":"billing@acme.test","currency":"EUR",
		"timezone":"Europe/Paris","metadata":{"segment":"smb","région":"ouest"},
		"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-02-01T00:00:00Z"}`
	for _, body := range []string{full, `{"customer":` + full + `}`, " \n" + full + "\n"} {
		c, err := schemas.ParseCustomer([]byte(body))
		if err != nil {
			t.Fatalf("ParseCustomer(%s): %v", body, err)
		}
		want := schemas.Customer{ExternalID: "cus_1", Name: "Acme", Email: "billing@acme.test", Currency: "EUR",
			Timezone: "Europe/Paris", Metadata: map[string]string{"segment": "smb", "région": "ouest"}}
		if c.ExternalID != want.ExternalID || c.Name != want.Name || c.Email != want.Email || c.Currency != want.Currency ||
			c.Timezone != want.Timezone || !maps.Equal(c.Metadata, want.Metadata) {
			t.Errorf("ParseCustomer = %+v, want %+v", c, want)
		}
		if !c.CreatedAt.IsZero() || !c.UpdatedAt.IsZero() {
			t.Errorf("server-assigned times were read from the body: %+v", c)
		}
	}

	for _, body := range []string{
		`{"external_id":"c"}`,
		`{"external_id":"c","name":null,"email":null,"currency":null,"timezone":null,"metadata":null}`,
		`{"external_id":"c","name":"","email":"","currency":"","timezone":"","metadata":{}}`,
		`{"external_id":"c","timezone":"UTC","currency":"JPY"}`,
		fmt.Sprintf(`{"external_id":%q,"name":%q,"email":%q,"metadata":%s}`,
			strings.Repeat("é", schemas.MaxCustomerIDLen), strings.Repeat("n", 256),
			strings.Repeat("a", 310)+"@example.c", metadataJSON(50, 64, 1024)),
	} {
		if _, err := schemas.ParseCustomer([]byte(body)); err != nil {
			t.Errorf("ParseCustomer(%.80s…): %v", body, err)
		}
	}

	checkInvalid(t, []invalidCase{
		{"no external_id", `{"name":"Acme"}`, []string{"external_id"}, "is required"},
		{"empty external_id", `{"external_id":""}`, []string{"external_id"}, "is required"},
		{"external_id not a string", `{"external_id":12}`, []string{"external_id"}, "must be a string"},
		{"external_id too long", fmt.Sprintf(`{"external_id":%q}`, strings.Repeat("x", schemas.MaxCustomerIDLen+1)),
			[]string{"external_id"}, "at most 256"},
		{"external_id control", `{"external_id":"a\nb"}`, []string{"external_id"}, "control characters"},
		{"external_id a dot", `{"external_id":"."}`, []string{"external_id"}, "path segment"},
		{"external_id two dots", `{"external_id":".."}`, []string{"external_id"}, "path segment"},
		{"external_id bad UTF-8", "{\"external_id\":\"a\xffb\"}", []string{"external_id"}, "UTF-8"},
		{"external_id lone surrogate", `{"external_id":"a\ud800"}`, []string{"external_id"}, "UTF-8"},
		{"name too long", fmt.Sprintf(`{"external_id":"c","name":%q}`, strings.Repeat("n", 257)), []string{"name"}, "at most 256"},
		{"email without @", `{"external_id":"c","email":"billing.acme.test"}`, []string{"email"}, "'@'"},
		{"email with two @", `{"external_id":"c","email":"a@b@c"}`, []string{"email"}, "'@'"},
		{"email without domain", `{"external_id":"c","email":"a@"}`, []string{"email"}, "'@'"},
		{"email too long", fmt.Sprintf(`{"external_id":"c","email":"%s@x.test"}`, strings.Repeat("a", 314)), []string{"email"}, "at most 320"},
		{"lower-case currency", `{"external_id":"c","currency":"eur"}`, []string{"currency"}, "ISO 4217"},
		{"unknown currency", `{"external_id":"c","currency":"ABC"}`, []string{"currency"}, "ISO 4217"},
		{"gold", `{"external_id":"c","currency":"XAU"}`, []string{"currency"}, "minor unit"},
		{"Local zone", `{"external_id":"c","timezone":"Local"}`, []string{"timezone"}, "Local"},
		{"unknown zone", `{"external_id":"c","timezone":"Mars/Olympus"}`, []string{"timezone"}, "IANA"},
		{"zone path", `{"external_id":"c","timezone":"../../etc/passwd"}`, []string{"timezone"}, "IANA"},
		{"too many metadata keys", fmt.Sprintf(`{"external_id":"c","metadata":%s}`, metadataJSON(51, 3, 1)), []string{"metadata"}, "at most 50"},
		{"metadata key too long", `{"external_id":"c","metadata":{"` + strings.Repeat("k", 65) + `":"v"}}`,
			[]string{"metadata." + strings.Repeat("k", 65)}, "at most 64"},
		{"metadata value too long", `{"external_id":"c","metadata":{"k":"` + strings.Repeat("v", 1025) + `"}}`,
			[]string{"metadata.k"}, "at most 1024"},
		{"metadata empty key", `{"external_id":"c","metadata":{"":"v"}}`, []string{"metadata"}, "empty key"},
		{"metadata number", `{"external_id":"c","metadata":{"seats":3}}`, []string{"metadata.seats"}, "must be a string"},
		{"metadata not an object", `{"external_id":"c","metadata":["a"]}`, []string{"metadata"}, "JSON object"},
		{"unknown fields, all named", `{"external_id":"c","Name":"x","billing":{}}`, []string{"Name", "billing"}, "unknown field"},
		{"wrapper with a sibling", `{"customer":{"external_id":"c"},"x":1}`, []string{"customer", "external_id", "x"}, "unknown field"},
		{"field twice", `{"external_id":"a","external_id":"b"}`, []string{"external_id"}, "twice"},
		{"not an object", `["c"]`, []string{"customer"}, "JSON object"},
		{"wrapped not an object", `{"customer":"c"}`, []string{"customer"}, "JSON object"},
		{"invalid JSON", `{"external_id":"c"`, []string{"customer"}, "invalid JSON"},
		{"trailing data", `{"external_id":"c"} {"external_id":"d"}`, []string{"customer"}, "invalid JSON"},
		{"every problem", `{"external_id":"","email":"x","currency":"usd","timezone":"Local"}`,
			[]string{"currency", "email", "external_id", "timezone"}, ""},
	}, func(b []byte) error { _, err := schemas.ParseCustomer(b); return err })
}

func TestCustomerValidate(t *testing.T) {
	ok := schemas.Customer{ExternalID: "c", Currency: "BHD", Timezone: "Asia/Tokyo", Metadata: map[string]string{"k": "v"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v): %v", ok, err)
	}
	bad := schemas.Customer{ExternalID: "c\x00", Name: "\xff", Currency: "usd", Timezone: "Local"}
	if got, want := errorFields(t, bad.Validate()), []string{"currency", "external_id", "name", "timezone"}; !slices.Equal(got, want) {
		t.Errorf("Validate(%+v) names %q, want %q", bad, got, want)
	}
}

// metadataJSON returns a metadata object of n keys of keyLen characters
// and values of valueLen characters.
func metadataJSON(n, keyLen, valueLen int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		key := fmt.Sprintf("%0*d", keyLen, i)
		fmt.Fprintf(&b, "%q:%q", key, strings.Repeat("v", valueLen))
	}
	b.WriteString("}")
	return b.String()
}

package schemas_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tally-oss/tally/schemas"
)

// testNow is the arrival time of every event in these tests: fixed, so that
// the time rules are tested at their exact boundaries.
var testNow = time.Date(2026, time.March, 15, 12, 0, 0, 0, time.UTC)

// fieldErrors returns every *schemas.FieldError in err, however deeply
// errors.Join nests them, and fails the test if any leaf of err is not one:
// callers are promised that every problem names its field.
func fieldErrors(t *testing.T, err error) []*schemas.FieldError {
	t.Helper()
	var out []*schemas.FieldError
	var walk func(error)
	walk = func(e error) {
		if joined, ok := e.(interface{ Unwrap() []error }); ok {
			for _, inner := range joined.Unwrap() {
				walk(inner)
			}
			return
		}
		var fe *schemas.FieldError
		if !errors.As(e, &fe) {
			t.Errorf("error %q (%T) is not a *schemas.FieldError", e, e)
			return
		}
		if fe.Message == "" {
			t.Errorf("field error for %q has no message", fe.Field)
		}
		out = append(out, fe)
	}
	if err != nil {
		walk(err)
	}
	return out
}

// errorFields returns the sorted, de-duplicated fields named by err.
func errorFields(t *testing.T, err error) []string {
	t.Helper()
	var fields []string
	for _, fe := range fieldErrors(t, err) {
		fields = append(fields, fe.Field)
	}
	slices.Sort(fields)
	return slices.Compact(fields)
}

// mustParseMeter parses a meter definition the test expects to be valid.
func mustParseMeter(t testing.TB, def string) schemas.Meter {
	t.Helper()
	m, err := schemas.ParseMeter([]byte(def))
	if err != nil {
		t.Fatalf("ParseMeter(%s): %v", def, err)
	}
	return m
}

// mustProps decodes event properties the way the aggregator does.
func mustProps(t testing.TB, raw string) map[string]any {
	t.Helper()
	props, err := schemas.DecodeProperties(json.RawMessage(raw))
	if err != nil {
		t.Fatalf("DecodeProperties(%s): %v", raw, err)
	}
	return props
}

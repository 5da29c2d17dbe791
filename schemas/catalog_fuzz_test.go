package schemas_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/tally-oss/tally/schemas"
)

// The catalog parsers must never panic, must return only field errors, and
// what they accept must be valid and survive the API's round trip: marshal,
// parse again, marshal to the same bytes.

func FuzzParsePlan(f *testing.F) {
	f.Add([]byte(planWith(`{"meter":"m","charge_model":"standard","properties":{"amount":"0.1"}}`)))
	f.Add([]byte(planWith(`{"meter":"m","charge_model":"package","properties":{"amount":1,"package_size":"10","free_units":2}}`)))
	f.Add([]byte(tieredPlan(schemas.ChargeGraduated, `"from_value":0,"to_value":10`, `"from_value":11,"flat_amount":"1e2"`)))
	f.Add([]byte(tieredPlan(schemas.ChargeVolume, `"from_value":0,"to_value":0.5`, `"from_value":0.5`)))
	f.Add([]byte(`{"plan":{"code":"p","name":"P","interval":"yearly","amount_currency":"BHD","metadata":{"a":"b"}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := schemas.ParsePlan(raw)
		if err != nil {
			fieldErrors(t, err)
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("ParsePlan accepted a plan Validate refuses: %v", err)
		}
		roundTrip(t, p, func(b []byte) (any, error) { return schemas.ParsePlan(b) })
	})
}

func FuzzParseCustomer(f *testing.F) {
	f.Add([]byte(`{"external_id":"c","name":"n","email":"a@b","currency":"JPY","timezone":"Asia/Tokyo","metadata":{"k":"v"}}`))
	f.Add([]byte(`{"customer":{"external_id":"c\u00e9"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := schemas.ParseCustomer(raw)
		if err != nil {
			fieldErrors(t, err)
			return
		}
		roundTrip(t, c, func(b []byte) (any, error) { return schemas.ParseCustomer(b) })
	})
}

func FuzzParseSubscription(f *testing.F) {
	f.Add([]byte(`{"external_id":"s","external_customer_id":"c","plan_code":"p","subscription_at":"2026-01-01T00:00:00+02:00","ending_at":"2026-02-01T00:00:00Z"}`))
	f.Add([]byte(`{"subscription":{"external_id":"s","external_customer_id":"c","plan_code":"p","billing_time":"anniversary","timezone":"UTC"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := schemas.ParseSubscription(raw)
		if err != nil {
			fieldErrors(t, err)
			return
		}
		roundTrip(t, s, func(b []byte) (any, error) { return schemas.ParseSubscription(b) })
	})
}

func roundTrip(t *testing.T, v any, parse func([]byte) (any, error)) {
	t.Helper()
	first, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %+v: %v", v, err)
	}
	again, err := parse(first)
	if err != nil {
		t.Fatalf("parsing its own output %s: %v", first, err)
	}
	second, err := json.Marshal(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Fatalf("round trip changed\n%s\nto\n%s", first, second)
	}
}

package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/schemas"
)

// This file maps Lago's event onto Tally's: transaction_id -> id, code ->
// type, external_customer_id (or the customer of external_subscription_id)
// -> customer_id, timestamp (Unix seconds) -> time, properties ->
// properties. The identity of the result is Tally's (org, customer_id,
// id), so a Lago event retried any number of times counts once.

// LagoMaxBatch is the most events one POST /api/v1/events/batch may
// hold, Lago's limit.
const LagoMaxBatch = 100

// lagoEventFields are the members of lagoEvent, in its order.
var lagoEventFields = []string{"transaction_id", "external_customer_id", "external_subscription_id", "code", "timestamp", "properties"}

// lagoEvent is one event of Lago's API. Fields stay raw so that a value
// of the wrong JSON type is reported against its Lago field name.
type lagoEvent struct {
	TransactionID          json.RawMessage `json:"transaction_id"`
	ExternalCustomerID     json.RawMessage `json:"external_customer_id"`
	ExternalSubscriptionID json.RawMessage `json:"external_subscription_id"`
	Code                   json.RawMessage `json:"code"`
	Timestamp              json.RawMessage `json:"timestamp"`
	Properties             json.RawMessage `json:"properties"`
}

// lagoInput is one Lago event on its way to a native one.
type lagoInput struct {
	ev           lagoEvent
	customer     string // external_customer_id, or resolved from the subscription
	subscription string // external_subscription_id, "" when absent
	time         time.Time
	errs         fieldErrors // by Lago field name
}

// fieldErrors are Lago's error_details of one event: messages by field.
type fieldErrors map[string][]string

func (fe fieldErrors) add(field, message string) { fe[field] = append(fe[field], message) }

// Lago's error codes for the cases it has one; other problems carry
// Tally's message.
const (
	lagoMandatory     = "value_is_mandatory"
	lagoInvalidFormat = "invalid_format"
	lagoNoEvents      = "no_events"
	lagoTooManyEvents = "too_many_events"
)

// lagoFields maps schemas.ParseEvent's field names back to Lago's.
var lagoFields = map[string]string{
	"id": "transaction_id", "type": "code", "customer_id": "external_customer_id",
	"time": "timestamp", "properties": "properties", "event": "event",
}

// nativeFields maps Lago's field names to the native ones the
// rejection metric is labelled with.
var nativeFields = map[string]string{
	"transaction_id": "id", "code": "type", "external_customer_id": "customer_id",
	"external_subscription_id": "customer_id", "timestamp": "time", "properties": "properties",
}

// isLagoEnvelope reports whether a body posted to the events route is
// Lago's {"event": {...}} rather than a native event: an object with an
// "event" object and no "id". A body that is not such an object (arrays,
// NDJSON, invalid JSON) stays on the native path and its errors.
func isLagoEnvelope(body []byte) bool {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return false
	}
	// Names are matched exactly, as everywhere (schemas.DecodeObject):
	// {"Event": {...}} is a native event with an unknown member.
	values, _, err := schemas.DecodeObject(trimmed, []string{"event", "id"})
	if err != nil {
		return false
	}
	ev := values[0]
	return len(ev) > 0 && ev[0] == '{' && isAbsentRaw(values[1])
}

// decodeLagoEvents frames a Lago body into its events: {"event": {...}}
// or, for the batch route, {"events": [...]} with 1 to LagoMaxBatch
// events. It does not look inside the events.
func decodeLagoEvents(body []byte, batch bool) ([]json.RawMessage, *lagoError) {
	values, _, err := schemas.DecodeObject(body, []string{"event", "events"})
	var fe *schemas.FieldError
	switch {
	case errors.As(err, &fe): // "event" or "events" twice, or in another case
		return nil, lagoBadRequest(requestMalformed, "%v", err)
	case errors.Is(err, schemas.ErrInvalidJSON):
		return nil, lagoBadRequest(requestMalformed, "the body is not a JSON object: %v", err)
	case err != nil:
		return nil, lagoBadRequest(requestMalformed, "the body is not a JSON object")
	}
	event, list := values[0], values[1]
	if !batch {
		if isAbsentRaw(event) {
			return nil, lagoBadRequest(requestMalformed, "param is missing or the value is empty: event")
		}
		return []json.RawMessage{event}, nil
	}
	if isAbsentRaw(list) {
		return nil, lagoValidation(requestEmpty, fieldErrors{"events": {lagoNoEvents}})
	}
	var events []json.RawMessage
	if err := json.Unmarshal(list, &events); err != nil {
		return nil, lagoBadRequest(requestMalformed, "events must be an array of event objects")
	}
	switch {
	case len(events) == 0:
		return nil, lagoValidation(requestEmpty, fieldErrors{"events": {lagoNoEvents}})
	case len(events) > LagoMaxBatch:
		return nil, lagoValidation(requestTooMany, fieldErrors{"events": {lagoTooManyEvents}})
	}
	return events, nil
}

// parseLagoEvent reads one event's fields; errs holds what is wrong with
// them. The customer of an event that names only a subscription is
// resolved afterwards, through the catalog.
func parseLagoEvent(raw json.RawMessage, arrival time.Time) lagoInput {
	in := lagoInput{errs: fieldErrors{}, time: arrival}
	values, _, err := schemas.DecodeObject(raw, lagoEventFields)
	var fe *schemas.FieldError
	switch {
	case errors.As(err, &fe): // a member twice, or in another case
		in.errs.add(fe.Field, fe.Message)
		return in
	case err != nil:
		in.errs.add("event", "must be a JSON object")
		return in
	}
	in.ev = lagoEvent{TransactionID: values[0], ExternalCustomerID: values[1], ExternalSubscriptionID: values[2],
		Code: values[3], Timestamp: values[4], Properties: values[5]}
	for field, v := range map[string]json.RawMessage{"transaction_id": in.ev.TransactionID, "code": in.ev.Code} {
		if isAbsentRaw(v) || string(bytes.TrimSpace(v)) == `""` {
			in.errs.add(field, lagoMandatory)
		}
	}
	in.customer = optionalString(in.ev.ExternalCustomerID, "external_customer_id", in.errs)
	in.subscription = optionalString(in.ev.ExternalSubscriptionID, "external_subscription_id", in.errs)
	if in.customer == "" && in.subscription == "" && in.errs["external_customer_id"] == nil && in.errs["external_subscription_id"] == nil {
		in.errs.add("external_subscription_id", lagoMandatory)
	}
	if !isAbsentRaw(in.ev.Timestamp) {
		t, err := lagoTimestamp(in.ev.Timestamp)
		if err != nil {
			in.errs.add("timestamp", lagoInvalidFormat)
		}
		in.time = t
	}
	return in
}

// optionalString reads an optional string field; "" when absent, null or
// empty.
func optionalString(raw json.RawMessage, field string, errs fieldErrors) string {
	if isAbsentRaw(raw) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		errs.add(field, "must be a string")
	}
	return s
}

// maxLagoTimestamp is year 10000: later Unix times are not RFC 3339.
var maxLagoTimestamp = decimal.NewFromInt(253402300800)

// lagoTimestamp reads Lago's timestamp: Unix seconds as a JSON number or
// a string of one, fractional seconds kept to the nanosecond (Lago reads
// it as a BigDecimal, so "1690000000.5" is half a second past).
func lagoTimestamp(raw json.RawMessage) (time.Time, error) {
	text := strings.TrimSpace(string(raw))
	if strings.HasPrefix(text, `"`) {
		if err := json.Unmarshal(raw, &text); err != nil {
			return time.Time{}, err
		}
		text = strings.TrimSpace(text)
	}
	// Bounded before decimal reads it: parsing a million digits costs a
	// second of CPU.
	if len(text) > schemas.MaxNumberLen {
		return time.Time{}, fmt.Errorf("timestamp is %d characters long, at most %d allowed", len(text), schemas.MaxNumberLen)
	}
	d, err := decimal.NewFromString(text)
	if err != nil {
		return time.Time{}, err
	}
	if d.IsNegative() || d.GreaterThanOrEqual(maxLagoTimestamp) {
		return time.Time{}, fmt.Errorf("timestamp %s is out of range", text)
	}
	secs := d.IntPart()
	nanos := d.Sub(decimal.NewFromInt(secs)).Shift(9).IntPart()
	return time.Unix(secs, nanos).UTC(), nil
}

// nativeEvent is the Tally event a Lago event maps onto.
type nativeEvent struct {
	ID         json.RawMessage `json:"id,omitempty"`
	Type       json.RawMessage `json:"type,omitempty"`
	CustomerID string          `json:"customer_id"`
	Time       string          `json:"time"`
	Properties json.RawMessage `json:"properties,omitempty"`
}

// native returns the native event JSON of an event without errors. The
// time is always written out: an absent Lago timestamp means the arrival
// time, which is also what the response shows.
func (in lagoInput) native() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	// The raw values come from a decoded document, so they encode.
	_ = enc.Encode(nativeEvent{ID: in.ev.TransactionID, Type: in.ev.Code, CustomerID: in.customer,
		Time: in.time.Format(time.RFC3339Nano), Properties: in.ev.Properties})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// lagoMessage is a native validation message as Lago shows it.
func lagoMessage(message string) string {
	if message == "is required" || message == "must not be empty" {
		return lagoMandatory
	}
	return message
}

func isAbsentRaw(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// Values are stored as ClickHouse Decimal(38, ValueScale): 26 integer
// digits and 12 fractional ones, exact under SUM (ten million events of 0.1
// sum to exactly 1000000). A value that does not fit is dead-lettered, not
// rounded: silently changing a billed quantity is worse than refusing it.
const (
	ValueScale     = 12
	ValuePrecision = 38
)

var maxValue = decimal.New(1, ValuePrecision-ValueScale) // 10^26, exclusive

// one is the value of a COUNT reading; decimals are immutable, so readings
// share it.
var one = decimal.NewFromInt(1)

// Reasons an event cannot be metered; stable codes stored with dead
// letters and used as metric labels.
const (
	ReasonValueMissing    = "value_missing"
	ReasonValueNotNumber  = "value_not_number"
	ReasonValueOutOfRange = "value_out_of_range"
	ReasonValueTooPrecise = "value_too_precise"
	ReasonValueNotScalar  = "value_not_scalar"
	ReasonGroupNotScalar  = "group_value_not_scalar"
	ReasonPropertiesJSON  = "properties_invalid"
	ReasonRecordMalformed = "record_malformed"
	// Set by the aggregator rather than by Evaluate: the meter's stored
	// definition no longer validates (the event is metered when it does
	// again, or when a fixed definition replaces it), and a row that
	// cannot be written for a reason retrying cannot fix (the aggregator
	// sets it aside instead of stalling the partition).
	ReasonMeterInvalid = "meter_invalid"
	ReasonUnwritable   = "unwritable"
	// ReasonEvaluationFailed: evaluating failed with an error Evaluate is
	// not documented to return; dead-lettering it keeps the partition
	// moving (the aggregator's fallback).
	ReasonEvaluationFailed = "evaluation_failed"
)

// EvalError says why an event cannot be metered by a meter.
type EvalError struct {
	Reason  string // one of the Reason* codes
	Message string
}

func (e *EvalError) Error() string { return e.Reason + ": " + e.Message }

// Reading is what one event contributes to one meter.
type Reading struct {
	Value       decimal.Decimal // 1 for COUNT; 0 for UNIQUE_COUNT
	Distinct    string          // the value UNIQUE_COUNT counts; "" otherwise
	GroupValues []string        // aligned with Meter.GroupKeys
}

// DecodeProperties decodes an event's properties for Evaluate, keeping
// numbers as json.Number so that no value passes through float64.
func DecodeProperties(raw json.RawMessage) (map[string]any, error) {
	props := map[string]any{}
	if isAbsent(raw) {
		return props, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&props); err != nil {
		return nil, &EvalError{Reason: ReasonPropertiesJSON, Message: err.Error()}
	}
	return props, nil
}

// Evaluate applies the meter to an event's decoded properties. It returns
// matched=false when the filter excludes the event, and an *EvalError when
// the event matches but cannot be metered. The meter must be validated.
func (m *Meter) Evaluate(props map[string]any) (r Reading, matched bool, err error) {
	return m.evaluate(decodedProps(props))
}

// propertySource answers the property lookups of Evaluate: decoded
// properties, or a PropertyView.
type propertySource interface {
	lookup(p Path) (any, bool)
}

type decodedProps map[string]any

func (d decodedProps) lookup(p Path) (any, bool) { return p.Lookup(d) }

func (m *Meter) evaluate(props propertySource) (r Reading, matched bool, err error) {
	if !m.Filter.match(props) {
		return Reading{}, false, nil
	}
	r.GroupValues = make([]string, len(m.groupPaths))
	for i, p := range m.groupPaths {
		v, ok := props.lookup(p)
		if !ok {
			continue // an absent group value is the empty group ""
		}
		s, ok := scalarText(v)
		if !ok {
			return Reading{}, true, &EvalError{Reason: ReasonGroupNotScalar,
				Message: fmt.Sprintf("group_by %s (%s) is an object or array", m.groupKeys[i], p)}
		}
		r.GroupValues[i] = s
	}
	spec, err := m.Aggregation.Spec()
	if err != nil {
		return Reading{}, true, err // Validate refuses such a meter; never guess
	}
	switch spec.Input {
	case InputNone:
		r.Value = one
		return r, true, nil
	case InputScalar:
		v, ok := props.lookup(m.valuePath)
		if !ok {
			return Reading{}, true, &EvalError{Reason: ReasonValueMissing, Message: m.ValueProperty + " is missing"}
		}
		s, ok := scalarText(v)
		if !ok {
			return Reading{}, true, &EvalError{Reason: ReasonValueNotScalar, Message: m.ValueProperty + " is an object or array"}
		}
		r.Distinct = s
		return r, true, nil
	case InputNumber:
		r.Value, err = m.numericValue(props)
		return r, true, err
	}
	return Reading{}, true, fmt.Errorf("aggregation %s: unknown input %d", m.Aggregation, spec.Input)
}

func (m *Meter) numericValue(props propertySource) (decimal.Decimal, error) {
	v, ok := props.lookup(m.valuePath)
	if !ok {
		return decimal.Decimal{}, &EvalError{Reason: ReasonValueMissing, Message: m.ValueProperty + " is missing"}
	}
	d, ok := numberOf(v, true)
	if !ok {
		return decimal.Decimal{}, &EvalError{Reason: ReasonValueNotNumber,
			Message: fmt.Sprintf("%s is %s, not a number", m.ValueProperty, describe(v))}
	}
	// The messages quote the value as the event wrote it, cut to
	// MaxQuotedValue: a number of a million digits must not make a message
	// (and the dead letter that carries it) a megabyte long.
	if d.Abs().GreaterThanOrEqual(maxValue) {
		return decimal.Decimal{}, &EvalError{Reason: ReasonValueOutOfRange,
			Message: fmt.Sprintf("%s = %s is outside ±10^%d", m.ValueProperty, quotedNumber(v), ValuePrecision-ValueScale)}
	}
	// A value with at most ValueScale decimal places is its own rounding;
	// only a longer one (1.0000000000000 may still be exact) is rounded.
	if d.Exponent() < -ValueScale && !d.Round(ValueScale).Equal(d) {
		return decimal.Decimal{}, &EvalError{Reason: ReasonValueTooPrecise,
			Message: fmt.Sprintf("%s = %s has more than %d decimal places", m.ValueProperty, quotedNumber(v), ValueScale)}
	}
	return d, nil
}

// MaxQuotedValue bounds a property value quoted in an EvalError's
// message, in bytes; a longer value is cut and marked "…(N bytes)".
const MaxQuotedValue = 256

// QuoteValue returns s cut to MaxQuotedValue bytes (at a rune boundary)
// with a marker naming its full length.
func QuoteValue(s string) string {
	return Truncate(s, MaxQuotedValue)
}

// Truncate returns s if it has at most n bytes, and otherwise its longest
// prefix (cut at a rune boundary) that leaves room for the marker
// "…(N bytes)", N being len(s), so the result has at most n bytes. An n too
// small for the marker gives the bare prefix of n bytes.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	marker := fmt.Sprintf("…(%d bytes)", len(s))
	if n < len(marker) {
		return s[:runeStart(s, n)]
	}
	return s[:runeStart(s, n-len(marker))] + marker
}

// runeStart returns the largest i <= n at which no multi-byte rune of s is
// cut (at most three bytes back; invalid UTF-8 is cut anywhere).
func runeStart(s string, n int) int {
	for i := n; i > 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return i
		}
	}
	return n
}

// quotedNumber is a numeric value as the event wrote it, cut to
// MaxQuotedValue.
func quotedNumber(v any) string {
	switch x := v.(type) {
	case json.Number:
		return QuoteValue(x.String())
	case string:
		return strconv.Quote(QuoteValue(x))
	}
	return QuoteValue(fmt.Sprint(v))
}

// scalarText renders a string, number or boolean as group or distinct
// text; numbers in canonical decimal form so 1.50 and 1.5 are one group.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	case json.Number:
		if d, err := decimal.NewFromString(x.String()); err == nil {
			return d.String(), true
		}
		return x.String(), true
	}
	return "", false
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			x = x[:40] + "…"
		}
		return fmt.Sprintf("the string %q", x)
	case bool:
		return fmt.Sprintf("the boolean %v", x)
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case json.Number:
		return "the number " + QuoteValue(x.String())
	}
	return QuoteValue(fmt.Sprintf("%v", v))
}

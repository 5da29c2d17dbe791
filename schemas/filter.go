package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/shopspring/decimal"
)

// Filter selects the events a meter counts (OpenMeter #629: "count only
// events matching ..."). In JSON it is an object whose keys are property
// paths ("status" or "$.response.status") mapped to conditions, plus the
// combinators "and" and "or" (arrays of filters) and "not" (a filter):
//
//	{"status": {"eq": "ok"}, "or": [{"tier": {"in": ["pro", "team"]}}, {"$.usage.tokens": {"gt": 1000}}]}
//
// All keys of one object must hold (implicit and). A property literally
// named "and", "or" or "not" is written "$.and".
type Filter struct {
	And        []Filter
	Or         []Filter
	Not        *Filter
	Properties []PropertyFilter // sorted by Property
}

// PropertyFilter is the condition on one property; every operator set
// must hold.
type PropertyFilter struct {
	Property string
	path     Path
	Eq, Ne   *Scalar
	In       []Scalar
	Gt, Gte  *decimal.Decimal
	Lt, Lte  *decimal.Decimal
	Exists   *bool
}

// Scalar is a JSON string, number or boolean operand. Numbers compare by
// exact decimal value (1 equals 1.0); values of different JSON types are
// never equal.
type Scalar struct {
	String *string
	Number *decimal.Decimal
	Bool   *bool
}

const maxFilterDepth = 8

var filterOperators = []string{"eq", "ne", "in", "gt", "gte", "lt", "lte", "exists"}

func parseFilter(raw json.RawMessage, field string, depth int) (Filter, error) {
	if depth > maxFilterDepth {
		return Filter{}, fieldErr(field, "is nested more than %d levels deep", maxFilterDepth)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return Filter{}, fieldErr(field, "must be a JSON object")
	}
	if len(obj) == 0 {
		return Filter{}, fieldErr(field, "must not be empty")
	}
	var f Filter
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		sub := field + "." + key
		switch key {
		case "and", "or":
			var items []json.RawMessage
			if err := json.Unmarshal(obj[key], &items); err != nil || len(items) == 0 {
				errs = append(errs, fieldErr(sub, "must be a non-empty array of filters"))
				continue
			}
			for i, item := range items {
				child, err := parseFilter(item, fmt.Sprintf("%s[%d]", sub, i), depth+1)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if key == "and" {
					f.And = append(f.And, child)
				} else {
					f.Or = append(f.Or, child)
				}
			}
		case "not":
			child, err := parseFilter(obj[key], sub, depth+1)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			f.Not = &child
		default:
			pf, err := parsePropertyFilter(key, obj[key], sub)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			f.Properties = append(f.Properties, pf)
		}
	}
	return f, errors.Join(errs...)
}

func parsePropertyFilter(property string, raw json.RawMessage, field string) (PropertyFilter, error) {
	p, err := ParsePath(property)
	if err != nil {
		return PropertyFilter{}, fieldErr(field, "%v", err)
	}
	var ops map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ops); err != nil || len(ops) == 0 {
		return PropertyFilter{}, fieldErr(field, "must be an object of operators, such as {\"eq\": \"ok\"}")
	}
	pf := PropertyFilter{Property: property, path: p}
	var errs []error
	for _, op := range slices.Sorted(maps.Keys(ops)) {
		opField, v := field+"."+op, ops[op]
		var err error
		switch op {
		case "eq":
			pf.Eq, err = parseScalarOperand(v, opField)
		case "ne":
			pf.Ne, err = parseScalarOperand(v, opField)
		case "in":
			pf.In, err = parseInOperand(v, opField)
		case "gt":
			pf.Gt, err = parseNumberOperand(v, opField)
		case "gte":
			pf.Gte, err = parseNumberOperand(v, opField)
		case "lt":
			pf.Lt, err = parseNumberOperand(v, opField)
		case "lte":
			pf.Lte, err = parseNumberOperand(v, opField)
		case "exists":
			var b bool
			if isAbsent(v) || json.Unmarshal(v, &b) != nil { // null would read as false
				err = fieldErr(opField, "must be true or false")
			}
			pf.Exists = &b
		default:
			err = fieldErr(opField, "unknown operator; use one of %v", filterOperators)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return pf, errors.Join(errs...)
}

func parseScalarOperand(raw json.RawMessage, field string) (*Scalar, error) {
	s, ok := scalarFromJSON(raw)
	if !ok {
		return nil, fieldErr(field, "must be a string, number or boolean")
	}
	return &s, nil
}

func parseInOperand(raw json.RawMessage, field string) ([]Scalar, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || len(items) == 0 {
		return nil, fieldErr(field, "must be a non-empty array")
	}
	out := make([]Scalar, 0, len(items))
	for i, item := range items {
		s, ok := scalarFromJSON(item)
		if !ok {
			return nil, fieldErr(fmt.Sprintf("%s[%d]", field, i), "must be a string, number or boolean")
		}
		out = append(out, s)
	}
	return out, nil
}

func parseNumberOperand(raw json.RawMessage, field string) (*decimal.Decimal, error) {
	s, ok := scalarFromJSON(raw)
	if !ok || s.Number == nil {
		return nil, fieldErr(field, "must be a number")
	}
	return s.Number, nil
}

func scalarFromJSON(raw json.RawMessage) (Scalar, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return Scalar{}, false
	}
	return scalarFromValue(v)
}

func scalarFromValue(v any) (Scalar, bool) {
	switch x := v.(type) {
	case string:
		return Scalar{String: &x}, true
	case bool:
		return Scalar{Bool: &x}, true
	case json.Number:
		d, err := decimal.NewFromString(x.String())
		if err != nil {
			return Scalar{}, false
		}
		return Scalar{Number: &d}, true
	}
	return Scalar{}, false
}

// UnmarshalJSON parses a filter object (used when reading stored meters).
func (f *Filter) UnmarshalJSON(raw []byte) error {
	parsed, err := parseFilter(raw, "filter", 0)
	if err != nil {
		return err
	}
	*f = parsed
	return nil
}

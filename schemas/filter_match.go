package schemas

import (
	"encoding/json"

	"github.com/shopspring/decimal"
)

// Match reports whether decoded event properties satisfy the filter. A nil
// filter matches everything.
//
// Semantics, for each operator on a property:
//   - eq: present and equal (same JSON type; numbers by exact value).
//   - ne: absent, or not equal.
//   - in: present and equal to one of the operands.
//   - gt, gte, lt, lte: present and a number (or a string holding one, as
//     value_property accepts) that compares as asked.
//   - exists: presence is as given.
func (f *Filter) Match(props map[string]any) bool {
	return f.match(decodedProps(props))
}

func (f *Filter) match(props propertySource) bool {
	if f == nil {
		return true
	}
	for i := range f.Properties {
		if !f.Properties[i].match(props) {
			return false
		}
	}
	for i := range f.And {
		if !f.And[i].match(props) {
			return false
		}
	}
	if len(f.Or) > 0 {
		matched := false
		for i := range f.Or {
			if f.Or[i].match(props) {
				matched = true
				break
			}
		}
		if !matched {
			return false
		}
	}
	if f.Not != nil && f.Not.match(props) {
		return false
	}
	return true
}

// lookupPath is the path the filter reads; zero when it names none.
func (pf *PropertyFilter) lookupPath() Path {
	if pf.path.IsZero() {
		// Built in Go rather than parsed: the zero Path would look up the
		// whole properties object as if it were the value.
		p, _ := ParsePath(pf.Property)
		return p
	}
	return pf.path
}

func (pf *PropertyFilter) match(props propertySource) bool {
	path := pf.lookupPath()
	var v any
	var present bool
	if !path.IsZero() {
		v, present = props.lookup(path)
	}
	if pf.Exists != nil && *pf.Exists != present {
		return false
	}
	var actual Scalar
	var isScalar bool
	if present {
		actual, isScalar = scalarFromValue(v)
	}
	if pf.Eq != nil && !(isScalar && actual.equal(*pf.Eq)) {
		return false
	}
	if pf.Ne != nil && isScalar && actual.equal(*pf.Ne) {
		return false
	}
	if pf.In != nil {
		found := false
		for _, s := range pf.In {
			if isScalar && actual.equal(s) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if pf.Gt == nil && pf.Gte == nil && pf.Lt == nil && pf.Lte == nil {
		return true
	}
	n, ok := numberOf(v, present)
	if !ok {
		return false
	}
	return (pf.Gt == nil || n.GreaterThan(*pf.Gt)) &&
		(pf.Gte == nil || n.GreaterThanOrEqual(*pf.Gte)) &&
		(pf.Lt == nil || n.LessThan(*pf.Lt)) &&
		(pf.Lte == nil || n.LessThanOrEqual(*pf.Lte))
}

func (s Scalar) equal(o Scalar) bool {
	switch {
	case s.String != nil && o.String != nil:
		return *s.String == *o.String
	case s.Number != nil && o.Number != nil:
		return s.Number.Equal(*o.Number)
	case s.Bool != nil && o.Bool != nil:
		return *s.Bool == *o.Bool
	}
	return false
}

// numberOf reads a JSON number, or a string that holds one, as a decimal.
func numberOf(v any, present bool) (decimal.Decimal, bool) {
	if !present {
		return decimal.Decimal{}, false
	}
	var text string
	switch x := v.(type) {
	case json.Number:
		text = x.String()
	case string:
		text = x
	default:
		return decimal.Decimal{}, false
	}
	if len(text) > MaxNumberLen {
		// Not read: a numeric string of a million digits costs about a
		// second of CPU to parse (ingest bounds JSON numbers the same way).
		return decimal.Decimal{}, false
	}
	d, err := decimal.NewFromString(text)
	return d, err == nil
}

// MarshalJSON writes the filter in the shape ParseMeter reads.
func (f Filter) MarshalJSON() ([]byte, error) {
	obj := map[string]any{}
	if len(f.And) > 0 {
		obj["and"] = f.And
	}
	if len(f.Or) > 0 {
		obj["or"] = f.Or
	}
	if f.Not != nil {
		obj["not"] = f.Not
	}
	for _, pf := range f.Properties {
		obj[pf.Property] = pf.operators()
	}
	return json.Marshal(obj)
}

func (pf PropertyFilter) operators() map[string]any {
	ops := map[string]any{}
	if pf.Eq != nil {
		ops["eq"] = *pf.Eq
	}
	if pf.Ne != nil {
		ops["ne"] = *pf.Ne
	}
	if pf.In != nil {
		ops["in"] = pf.In
	}
	for name, d := range map[string]*decimal.Decimal{"gt": pf.Gt, "gte": pf.Gte, "lt": pf.Lt, "lte": pf.Lte} {
		if d != nil {
			ops[name] = json.Number(d.String())
		}
	}
	if pf.Exists != nil {
		ops["exists"] = *pf.Exists
	}
	return ops
}

// MarshalJSON writes the scalar as its JSON value.
func (s Scalar) MarshalJSON() ([]byte, error) {
	switch {
	case s.String != nil:
		return json.Marshal(*s.String)
	case s.Number != nil:
		return []byte(s.Number.String()), nil
	case s.Bool != nil:
		return json.Marshal(*s.Bool)
	}
	return []byte("null"), nil
}

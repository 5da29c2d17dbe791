package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Aggregation is how a meter folds the values of matching events.
type Aggregation string

// The aggregations a meter can use.
const (
	AggSum         Aggregation = "SUM"
	AggCount       Aggregation = "COUNT"
	AggMax         Aggregation = "MAX"
	AggMin         Aggregation = "MIN"
	AggAvg         Aggregation = "AVG"
	AggUniqueCount Aggregation = "UNIQUE_COUNT"
	AggLatest      Aggregation = "LATEST"
)

// Aggregations lists every valid Aggregation.
var Aggregations = []Aggregation{AggSum, AggCount, AggMax, AggMin, AggAvg, AggUniqueCount, AggLatest}

// Identifiers that reach SQL (meter keys, group keys) must match these
// patterns; they are still bound as parameters, the patterns keep them
// readable in URLs, CSV headers and dashboards.
var (
	MeterKeyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)
	GroupKeyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
)

// CustomerGroupKey is the built-in group key of every meter.
const CustomerGroupKey = "customer_id"

// MaxGroupKeys bounds group_by: every key multiplies result cardinality.
const MaxGroupKeys = 16

// Meter turns events of one type into usage, and the events addressed to
// it (AddressedType). The server assigns Revision
// and CreatedAt; a meter deleted and created again under the same key gets
// a new revision, so readings of the old definition never mix in.
type Meter struct {
	Key           string            `json:"key"`
	Name          string            `json:"name,omitempty"`
	Description   string            `json:"description,omitempty"`
	EventType     string            `json:"event_type"`
	Aggregation   Aggregation       `json:"aggregation"`
	ValueProperty string            `json:"value_property,omitempty"`
	GroupBy       map[string]string `json:"group_by,omitempty"`
	Filter        *Filter           `json:"filter,omitempty"`
	Revision      uint64            `json:"revision,omitempty"`
	CreatedAt     time.Time         `json:"created_at,omitzero"`

	valuePath  Path
	groupKeys  []string // sorted
	groupPaths []Path   // aligned with groupKeys
}

// meterInput is the wire shape; the filter stays raw so that its errors
// can name their position ("filter.and[1].status.gt").
type meterInput struct {
	Key           string            `json:"key"`
	Name          string            `json:"name"`
	Description   string            `json:"description"`
	EventType     string            `json:"event_type"`
	Aggregation   Aggregation       `json:"aggregation"`
	ValueProperty string            `json:"value_property"`
	GroupBy       map[string]string `json:"group_by"`
	Filter        json.RawMessage   `json:"filter"`
	Revision      uint64            `json:"revision"`
	CreatedAt     time.Time         `json:"created_at"`
}

// ParseMeter decodes and validates a new meter definition. Unknown fields
// are rejected: a misspelt "filter" silently ignored would meter the wrong
// events. Errors are *FieldError values, joined with errors.Join.
func ParseMeter(raw []byte) (Meter, error) { return parseMeter(raw, false) }

// ParseStoredMeter decodes a definition stored earlier. It applies the
// rules that have held since meters were first stored, but not rules
// added later for new meters (the reserved AddressedTypePrefix): a meter
// stored before a rule existed keeps metering instead of silently
// dropping out of every batch.
func ParseStoredMeter(raw []byte) (Meter, error) { return parseMeter(raw, true) }

func parseMeter(raw []byte, stored bool) (Meter, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var in meterInput
	if err := dec.Decode(&in); err != nil {
		return Meter{}, meterDecodeError(err)
	}
	// Decode stops after the first value: a second object holding the
	// "filter" would be silently ignored.
	if _, err := dec.Token(); err != io.EOF {
		return Meter{}, fieldErr("meter", "must be a single JSON object, found more after it")
	}
	m := Meter{
		Key: in.Key, Name: in.Name, Description: in.Description, EventType: in.EventType,
		Aggregation:   Aggregation(strings.ToUpper(string(in.Aggregation))),
		ValueProperty: in.ValueProperty, GroupBy: in.GroupBy,
		Revision: in.Revision, CreatedAt: in.CreatedAt,
	}
	var errs []error
	if !isAbsent(in.Filter) {
		f, err := parseFilter(in.Filter, "filter", 0)
		if err != nil {
			errs = append(errs, err)
		} else {
			m.Filter = &f
		}
	}
	if err := m.validate(stored); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Meter{}, err
	}
	return m, nil
}

func meterDecodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" {
			return fieldErr("meter", "must be a JSON object")
		}
		return fieldErr(typeErr.Field, "must be of JSON type %s", typeErr.Type.Kind())
	}
	if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fieldErr(strings.Trim(msg, `"`), "unknown field")
	}
	return fieldErr("meter", "invalid JSON: %v", err)
}

// Validate checks a new definition and prepares it for Evaluate. Every
// problem is reported, each naming its field.
func (m *Meter) Validate() error { return m.validate(false) }

func (m *Meter) validate(stored bool) error {
	var errs []error
	if !MeterKeyPattern.MatchString(m.Key) {
		errs = append(errs, fieldErr("key", "%q must match %s", m.Key, MeterKeyPattern))
	}
	if utf8.RuneCountInString(m.Name) > 256 {
		errs = append(errs, fieldErr("name", "is longer than 256 characters"))
	}
	if utf8.RuneCountInString(m.Description) > 4096 {
		errs = append(errs, fieldErr("description", "is longer than 4096 characters"))
	}
	if m.EventType == "" {
		errs = append(errs, fieldErr("event_type", "is required"))
	} else if utf8.RuneCountInString(m.EventType) > MaxEventTypeLen { // as ParseEvent counts it
		errs = append(errs, fieldErr("event_type", "is longer than %d characters", MaxEventTypeLen))
	} else if !stored && strings.HasPrefix(m.EventType, AddressedTypePrefix) {
		errs = append(errs, fieldErr("event_type", "%q starts with %q, which is reserved: an event of type %q is addressed "+
			"to the meter whose key follows it, whatever that meter's event_type", m.EventType, AddressedTypePrefix, AddressedTypePrefix+"<meter key>"))
	}
	if !slices.Contains(Aggregations, m.Aggregation) {
		errs = append(errs, fieldErr("aggregation", "%q must be one of %v", m.Aggregation, Aggregations))
	}
	m.valuePath = Path{}
	_, specErr := m.Aggregation.Spec()
	known := specErr == nil
	switch {
	case known && !m.Aggregation.NeedsValue() && m.ValueProperty != "":
		errs = append(errs, fieldErr("value_property", "must be empty for %s, which counts events", m.Aggregation))
	case known && m.Aggregation.NeedsValue() && m.ValueProperty == "":
		errs = append(errs, fieldErr("value_property", "is required for %s", m.Aggregation))
	case m.ValueProperty != "":
		p, err := ParsePath(m.ValueProperty)
		if err != nil {
			errs = append(errs, fieldErr("value_property", "%v", err))
			break // keep the definition as written
		}
		m.valuePath, m.ValueProperty = p, p.String()
	}
	errs = append(errs, m.compileGroupBy()...)
	return errors.Join(errs...)
}

func (m *Meter) compileGroupBy() []error {
	var errs []error
	if len(m.GroupBy) > MaxGroupKeys {
		errs = append(errs, fieldErr("group_by", "has %d keys, at most %d allowed", len(m.GroupBy), MaxGroupKeys))
	}
	m.groupKeys, m.groupPaths = nil, nil
	// Canonical paths go into a copy: copies of a meter share the map, and
	// writing to it would race with (and change) the others.
	m.GroupBy = maps.Clone(m.GroupBy)
	for _, key := range slices.Sorted(maps.Keys(m.GroupBy)) {
		field := "group_by." + key
		if !GroupKeyPattern.MatchString(key) {
			errs = append(errs, fieldErr(field, "key must match %s", GroupKeyPattern))
			continue
		}
		if key == CustomerGroupKey {
			errs = append(errs, fieldErr(field, "customer_id is built in: every meter can group by it"))
			continue
		}
		p, err := ParsePath(m.GroupBy[key])
		if err != nil {
			errs = append(errs, fieldErr(field, "%v", err))
			continue
		}
		m.GroupBy[key] = p.String()
		m.groupKeys = append(m.groupKeys, key)
		m.groupPaths = append(m.groupPaths, p)
	}
	return errs
}

// GroupKeys returns the meter's group_by keys, sorted; readings store group
// values in this order.
func (m *Meter) GroupKeys() []string { return m.groupKeys }

// HasGroupKey reports whether key can be used to group or filter a query of
// this meter (customer_id always can).
func (m *Meter) HasGroupKey(key string) bool {
	return key == CustomerGroupKey || slices.Contains(m.groupKeys, key)
}

// SameDefinition reports whether a and b meter events identically, ignoring
// name, description and server-assigned fields.
func SameDefinition(a, b Meter) bool {
	ja, _ := json.Marshal(definitionOf(a))
	jb, _ := json.Marshal(definitionOf(b))
	return bytes.Equal(ja, jb)
}

func definitionOf(m Meter) Meter {
	return Meter{Key: m.Key, EventType: m.EventType, Aggregation: m.Aggregation,
		ValueProperty: m.ValueProperty, GroupBy: m.GroupBy, Filter: m.Filter}
}

func (a Aggregation) String() string { return string(a) }

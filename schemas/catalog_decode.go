package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The catalog parsers read each JSON object member by member instead of
// decoding into a struct with DisallowUnknownFields: that way every error
// names its full path ("charges[1].properties.graduated_ranges[2].from_value"),
// every unknown member is reported rather than only the first, member names
// match exactly (encoding/json would also accept "External_ID"), a member
// given twice is refused, and a value of the wrong JSON type is reported
// against its member rather than as a generic decode error.

// catalogBody decodes a request body holding one object of entity
// ("customer", "plan", "subscription"), in plain or Lago's wrapped form
// ({"plan": {...}}: unwrapped when "plan" is the only member). Members are
// named without the wrapper in errors.
func catalogBody(raw []byte, entity string) (*jsonMembers, error) {
	if !json.Valid(raw) {
		// Unmarshal says what is wrong, including data after the object.
		err := json.Unmarshal(raw, new(json.RawMessage))
		return nil, fieldErr(entity, "invalid JSON: %v", err)
	}
	obj, err := catalogObject(raw, entity, "")
	if err != nil {
		return nil, err
	}
	if inner, ok := obj.members[entity]; ok && len(obj.members) == 1 {
		if obj, err = catalogObject(inner, entity, ""); err != nil {
			return nil, err
		}
	}
	return obj, nil
}

// jsonMembers is one JSON object being read: take removes the members the
// parser knows, unknown reports the rest.
type jsonMembers struct {
	prefix  string // path of the members: "" or "charges[1]."
	members map[string]json.RawMessage
	errs    []error
}

// catalogObject decodes raw, valid JSON, as an object named field in
// errors, whose members are named prefix+name.
func catalogObject(raw json.RawMessage, field, prefix string) (*jsonMembers, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fieldErr(field, "must be a JSON object")
	}
	obj := &jsonMembers{prefix: prefix, members: map[string]json.RawMessage{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fieldErr(field, "invalid JSON: %v", err)
		}
		name, _ := tok.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, fieldErr(field, "invalid JSON: %v", err)
		}
		if _, dup := obj.members[name]; dup {
			return nil, fieldErr(prefix+name, "is given twice")
		}
		obj.members[name] = value
	}
	return obj, nil
}

func (o *jsonMembers) path(name string) string { return o.prefix + name }

func (o *jsonMembers) fail(name, format string, args ...any) {
	o.errs = append(o.errs, fieldErr(o.path(name), format, args...))
}

// take removes and returns a member; nil when it is absent or null.
func (o *jsonMembers) take(name string) json.RawMessage {
	raw := o.members[name]
	delete(o.members, name)
	if isAbsent(raw) {
		return nil
	}
	return raw
}

// ignore drops members the server assigns, so that a GET response can be
// sent back as it is.
func (o *jsonMembers) ignore(names ...string) {
	for _, name := range names {
		delete(o.members, name)
	}
}

// unknown reports every member not taken, in name order, and returns all
// errors found reading the object.
func (o *jsonMembers) unknown() []error {
	for _, name := range slices.Sorted(maps.Keys(o.members)) {
		o.fail(name, "unknown field")
	}
	o.members = nil
	return o.errs
}

func (o *jsonMembers) str(name string) string {
	raw := o.take(name)
	if raw == nil {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		o.fail(name, "must be a string")
		return ""
	}
	// On the raw text: Unmarshal has replaced invalid UTF-8 with U+FFFD.
	if !validUnicode(raw) {
		o.fail(name, "must be valid UTF-8")
		return ""
	}
	return s
}

func (o *jsonMembers) boolean(name string) bool {
	switch raw := o.take(name); string(raw) {
	case "", "false":
		return false
	case "true":
		return true
	}
	o.fail(name, "must be true or false")
	return false
}

// integer reads a JSON integer such as an amount in cents.
func (o *jsonMembers) integer(name string) int64 {
	raw := o.take(name)
	if raw == nil {
		return 0
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		o.fail(name, "must be a JSON integer, found %s", truncateRaw(raw))
	}
	return n
}

// timestamp reads an RFC 3339 time, in UTC. nil when absent.
func (o *jsonMembers) timestamp(name string) *time.Time {
	raw := o.take(name)
	if raw == nil {
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		o.fail(name, "must be an RFC 3339 string such as 2026-01-02T15:04:05Z")
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		o.fail(name, "%q is not RFC 3339 (for example 2026-01-02T15:04:05Z)", s)
		return nil
	}
	t = t.UTC()
	return &t
}

// object reads a nested object; nil when absent.
func (o *jsonMembers) object(name string) *jsonMembers {
	raw := o.take(name)
	if raw == nil {
		return nil
	}
	obj, err := catalogObject(raw, o.path(name), o.path(name)+".")
	if err != nil {
		o.errs = append(o.errs, err)
		return nil
	}
	return obj
}

// array reads an array's raw elements: nil when absent, empty (not nil)
// when given as [].
func (o *jsonMembers) array(name string) []json.RawMessage {
	raw := o.take(name)
	if raw == nil {
		return nil
	}
	elems := []json.RawMessage{}
	if raw[0] != '[' || json.Unmarshal(raw, &elems) != nil {
		o.fail(name, "must be a JSON array")
		return nil
	}
	return elems
}

// metadata reads an object of string values.
func (o *jsonMembers) metadata(name string) map[string]string {
	raw := o.members[name]
	obj := o.object(name)
	if obj == nil {
		return nil
	}
	// On the raw text: the decoder has replaced invalid UTF-8 in keys.
	if !validUnicode(raw) {
		o.fail(name, "must be valid UTF-8")
		return nil
	}
	out := make(map[string]string, len(obj.members))
	for _, key := range slices.Sorted(maps.Keys(obj.members)) {
		out[key] = obj.str(key)
	}
	o.errs = append(o.errs, obj.unknown()...)
	return out
}

func truncateRaw(raw json.RawMessage) string {
	s := string(raw)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// indexed names element i of an array member: "charges[1]".
func indexed(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file reads the JSON of an event in one pass that also enforces the
// limits below, so that nothing downstream (the aggregator's decimal
// arithmetic, a dead letter quoting a value, ClickHouse) ever sees an input
// that costs more than its size: a number of a million digits costs about
// a second of CPU to parse as a decimal, once per meter that reads it.
//
// Member names are case-sensitive. encoding/json matches them without
// regard to case and lets the last of two equal names win, so {"id":"a",
// "ID":"b"} would be the event "b" to it and, perhaps, "a" to another
// reader; such an object is refused instead.

// Limits on the JSON of an event. They are part of the public contract
// (README).
const (
	// MaxNumberLen bounds the text of a number in properties. A reading
	// holds 38 digits (Decimal(38, 12)); with a sign, a point and an
	// exponent that is far below 100, and so is anything a float64 prints.
	MaxNumberLen = 100
	// MaxNumberExponent bounds the exponent written in a number in
	// properties (1e-1000 is accepted, 1e-1001 is not); shopspring/decimal
	// refuses exponents beyond ±10000 and big ones cost time to compare.
	MaxNumberExponent = 1000
	// MaxPropertiesDepth bounds how deep properties nest: the properties
	// object itself is level 1, so {"a":{"b":1}} is 2 levels deep.
	MaxPropertiesDepth = 32
	// maxSkipDepth bounds the nesting of members that are read but not
	// stored (unknown members, and the envelopes of Lago's API around
	// an event), so that the scanner's recursion is always bounded.
	maxSkipDepth = 2 * MaxPropertiesDepth
)

// maxReadingMagnitude is the exponent of the smallest power of ten a
// reading cannot hold: Decimal(38, 12) holds |v| < 10^26.
const maxReadingMagnitude = ValuePrecision - ValueScale

// ErrNotObject is DecodeObject's error for a JSON value that is not an
// object; ErrInvalidJSON wraps encoding/json's own message for input
// that is not JSON at all.
var (
	ErrNotObject   = errors.New("must be a JSON object")
	ErrInvalidJSON = errors.New("invalid JSON")
)

// errSyntax is the scanner's internal signal of a syntax error; callers
// replace it by encoding/json's message (syntaxError).
var errSyntax = errors.New("syntax error")

// objectMembers is what readObject found.
type objectMembers struct {
	values  []json.RawMessage // aligned with the names asked for; nil when absent
	spaced  []bool            // values[i] holds whitespace to compact away
	unknown []string          // names of the other members, in order (if asked for)
}

// readObject reads the JSON object raw in one pass. It returns the value
// of each of names and, if wantUnknown, the names of the other members.
// One of names appearing twice, or a name that differs from one of names
// only by case, is a *FieldError naming it. The values of names whose
// checked[i] is true are checked as properties (numbers, depth, repeated
// names); the other values are only checked to be JSON nested at most
// maxSkipDepth deep. A value that is not an object is ErrNotObject (null
// included), input that is not JSON wraps ErrInvalidJSON.
func readObject(raw []byte, names []string, checked []bool, wantUnknown bool) (objectMembers, error) {
	out := objectMembers{values: make([]json.RawMessage, len(names)), spaced: make([]bool, len(names))}
	err := readObjectInto(&out, raw, names, checked, wantUnknown, &scanMemory{})
	return out, err
}

// scanMemory is the memory the scanner works in, kept across the events
// of a request by a RecordBuilder so that reading an event allocates
// nothing of its own.
type scanMemory struct {
	values [numEventFields]json.RawMessage
	spaced [numEventFields]bool
	path   []pathSeg
	keys   [][]byte
}

// readObjectInto is readObject into out, whose values and spaced have the
// length of names, with the scanner's path and keys in mem.
func readObjectInto(out *objectMembers, raw []byte, names []string, checked []bool, wantUnknown bool, mem *scanMemory) error {
	s := scanner{data: raw, path: mem.path[:0], keys: mem.keys[:0]}
	err := s.readObject(out, names, checked, wantUnknown)
	mem.path, mem.keys = s.path[:0], s.keys[:0]
	return err
}

func (s *scanner) readObject(out *objectMembers, names []string, checked []bool, wantUnknown bool) error {
	raw := s.data
	s.space()
	if s.i == len(raw) || raw[s.i] != '{' {
		if json.Valid(raw) { // rare: only for input that is not an object
			return ErrNotObject
		}
		return syntaxError(raw)
	}
	s.i++
	s.space()
	if s.peek() == '}' {
		s.i++
		return s.end()
	}
	for {
		if s.peek() != '"' {
			return syntaxError(raw)
		}
		keyStart := s.i
		escaped, err := s.str()
		if err != nil {
			return syntaxError(raw)
		}
		name := raw[keyStart+1 : s.i-1]
		if escaped {
			var unquoted string
			if json.Unmarshal(raw[keyStart:s.i], &unquoted) != nil {
				return syntaxError(raw)
			}
			name = []byte(unquoted)
		}
		known := -1
		for i, n := range names {
			if string(name) == n {
				known = i
				break
			}
		}
		if known < 0 {
			for _, n := range names {
				if strings.EqualFold(string(name), n) {
					return fieldErr(clipName(name), "is not a member name: names are case-sensitive, send it as %q (and only once)", n)
				}
			}
		} else if out.values[known] != nil {
			return fieldErr(names[known], "appears more than once; send each member once")
		}
		s.space()
		if s.peek() != ':' {
			return syntaxError(raw)
		}
		s.i++
		s.space()
		check := known >= 0 && checked != nil && checked[known]
		s.spaced = false
		s.path = append(s.path[:0], pathSeg{key: name, index: -1})
		start := s.i
		if err := s.value(0, check); err != nil {
			if errors.Is(err, errSyntax) {
				return syntaxError(raw)
			}
			return err
		}
		switch {
		case known >= 0:
			out.values[known] = raw[start:s.i:s.i]
			out.spaced[known] = s.spaced
		case wantUnknown:
			out.unknown = append(out.unknown, string(name))
		}
		s.space()
		switch s.peek() {
		case ',':
			s.i++
			s.space()
			continue
		case '}':
			s.i++
			return s.end()
		}
		return syntaxError(raw)
	}
}

// syntaxError is encoding/json's description of what is wrong with raw,
// which readObject found not to be JSON.
func syntaxError(raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidJSON, err)
	}
	return ErrInvalidJSON // not reached while the scanner agrees with encoding/json (FuzzParseEvent checks it)
}

// scanner walks JSON text. It validates the syntax as encoding/json does
// and, for values being checked, the limits of this file.
type scanner struct {
	data   []byte
	i      int
	spaced bool      // whitespace was skipped inside the current value
	path   []pathSeg // where the scanner is, for the field of an error
	keys   [][]byte  // member names of the checked objects being read
}

// pathSeg is one step of a path: a member name, or an array index when
// index >= 0.
type pathSeg struct {
	key   []byte
	index int
}

func (s *scanner) peek() byte {
	if s.i < len(s.data) {
		return s.data[s.i]
	}
	return 0
}

// space skips JSON whitespace and notes that it did.
func (s *scanner) space() {
	start := s.i
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
			continue
		}
		break
	}
	if s.i > start {
		s.spaced = true
	}
}

// end checks that nothing but whitespace follows the top-level value.
func (s *scanner) end() error {
	s.space()
	if s.i != len(s.data) {
		return syntaxError(s.data)
	}
	return nil
}

// value reads one value at nesting depth (the number of containers
// around it, counting from the member being read).
func (s *scanner) value(depth int, check bool) error {
	switch c := s.peek(); {
	case c == '{':
		return s.object(depth+1, check)
	case c == '[':
		return s.array(depth+1, check)
	case c == '"':
		_, err := s.str()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		start := s.i
		if !s.number() {
			return errSyntax
		}
		if check {
			if msg := numberProblem(s.data[start:s.i]); msg != "" {
				return fieldErr(s.field(), "%s", msg)
			}
		}
		return nil
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return errSyntax
}

func (s *scanner) literal(word string) error {
	if !bytes.HasPrefix(s.data[s.i:], []byte(word)) {
		return errSyntax
	}
	s.i += len(word)
	return nil
}

// tooDeep checks the depth of a container the scanner is entering.
func (s *scanner) tooDeep(depth int, check bool) error {
	limit := maxSkipDepth
	if check {
		limit = MaxPropertiesDepth
	}
	if depth <= limit {
		return nil
	}
	return fieldErr(s.field(), "is nested deeper than %d levels (the member itself is level 1)", limit)
}

func (s *scanner) object(depth int, check bool) error {
	if err := s.tooDeep(depth, check); err != nil {
		return err
	}
	s.i++ // '{'
	s.space()
	if s.peek() == '}' {
		s.i++
		return nil
	}
	at, keysAt := len(s.path), len(s.keys)
	s.path = append(s.path, pathSeg{index: -1})
	err := s.members(depth, check, at, keysAt)
	s.path, s.keys = s.path[:at], s.keys[:keysAt]
	return err
}

// members reads the members of an object whose '{' was read; its path
// segment is s.path[at] and the names of its members go to s.keys from
// keysAt.
func (s *scanner) members(depth int, check bool, at, keysAt int) error {
	var wide map[string]struct{} // names of an object too wide to search linearly
	for {
		if s.peek() != '"' {
			return errSyntax
		}
		keyStart := s.i
		escaped, err := s.str()
		if err != nil {
			return err
		}
		key := s.data[keyStart+1 : s.i-1]
		s.path[at].key = key
		if check {
			name := key
			if escaped {
				var unquoted string
				if json.Unmarshal(s.data[keyStart:s.i], &unquoted) != nil {
					return errSyntax
				}
				name = []byte(unquoted)
			}
			if s.seen(keysAt, &wide, name) {
				return fieldErr(s.field(), "appears more than once in its object; send each member once")
			}
		}
		s.space()
		if s.peek() != ':' {
			return errSyntax
		}
		s.i++
		s.space()
		if err := s.value(depth, check); err != nil {
			return err
		}
		s.space()
		switch s.peek() {
		case ',':
			s.i++
			s.space()
			continue
		case '}':
			s.i++
			return nil
		}
		return errSyntax
	}
}

// wideObject is the number of members past which names are looked up in a
// map rather than compared one by one.
const wideObject = 16

// seen records name as a member of the object whose names start at
// s.keys[from] and reports whether it was there already.
func (s *scanner) seen(from int, wide *map[string]struct{}, name []byte) bool {
	if *wide != nil {
		if _, ok := (*wide)[string(name)]; ok {
			return true
		}
		(*wide)[string(name)] = struct{}{}
		return false
	}
	for _, k := range s.keys[from:] {
		if bytes.Equal(k, name) {
			return true
		}
	}
	s.keys = append(s.keys, name)
	if len(s.keys)-from > wideObject {
		*wide = make(map[string]struct{}, 2*wideObject)
		for _, k := range s.keys[from:] {
			(*wide)[string(k)] = struct{}{}
		}
	}
	return false
}

func (s *scanner) array(depth int, check bool) error {
	if err := s.tooDeep(depth, check); err != nil {
		return err
	}
	s.i++ // '['
	s.space()
	if s.peek() == ']' {
		s.i++
		return nil
	}
	at := len(s.path)
	s.path = append(s.path, pathSeg{index: 0})
	err := s.elements(depth, check, at)
	s.path = s.path[:at]
	return err
}

// elements reads the elements of an array whose '[' was read; its path
// segment is s.path[at].
func (s *scanner) elements(depth int, check bool, at int) error {
	for {
		if err := s.value(depth, check); err != nil {
			return err
		}
		s.space()
		switch s.peek() {
		case ',':
			s.i++
			s.space()
			s.path[at].index++
			continue
		case ']':
			s.i++
			return nil
		}
		return errSyntax
	}
}

// str reads a string, reporting whether it holds escapes. Bytes that are
// not UTF-8 pass, as they do in encoding/json; ParseEvent checks UTF-8
// where it matters. The scanner of record values reads it
// (skipJSONString).
func (s *scanner) str() (escaped bool, err error) {
	end, escaped, ok := skipJSONString(s.data, s.i)
	s.i = end
	if !ok {
		return escaped, errSyntax
	}
	return escaped, nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// number reads a number in JSON's grammar (skipJSONNumber).
func (s *scanner) number() bool {
	end, ok := skipJSONNumber(s.data, s.i)
	s.i = end
	return ok
}

// field names where the scanner is: the member being read, then each
// name (".name") or index ("[3]") on the way. Names are cut at 64 bytes,
// so that an error never quotes a huge input.
func (s *scanner) field() string {
	var b strings.Builder
	for i, seg := range s.path {
		switch {
		case seg.index >= 0:
			b.WriteString("[" + strconv.Itoa(seg.index) + "]")
		case i == 0:
			b.WriteString(clipName(seg.key))
		default:
			b.WriteString("." + clipName(seg.key))
		}
	}
	return b.String()
}

func clipName(name []byte) string {
	const max = 64
	if len(name) > max {
		return string(bytes.ToValidUTF8(name[:max], nil)) + "…"
	}
	return string(name)
}

// numberProblem says why a JSON number may not be stored in properties,
// or returns "": it is longer than MaxNumberLen, its exponent is beyond
// ±MaxNumberExponent, or its magnitude is 10^26 or more, which no reading
// can hold (issue 6 defects 1 and 11). It works on the text alone.
func numberProblem(text []byte) string {
	if len(text) > MaxNumberLen {
		return fmt.Sprintf("is a number %d characters long, at most %d allowed", len(text), MaxNumberLen)
	}
	digits := text
	if digits[0] == '-' {
		digits = digits[1:]
	}
	exp := 0
	if e := bytes.IndexAny(digits, "eE"); e >= 0 {
		n, err := strconv.Atoi(string(digits[e+1:]))
		if err != nil || n > MaxNumberExponent || n < -MaxNumberExponent {
			return fmt.Sprintf("has the exponent %.20s, at most ±%d allowed", digits[e+1:], MaxNumberExponent)
		}
		exp, digits = n, digits[:e]
	}
	intPart, frac, _ := bytes.Cut(digits, []byte{'.'})
	// The magnitude of a non-zero number is 10^adjusted, where adjusted
	// is the power of ten of its first non-zero digit.
	var adjusted int
	if !bytes.Equal(intPart, []byte{'0'}) {
		adjusted = len(intPart) - 1 + exp
	} else {
		k := bytes.IndexFunc(frac, func(r rune) bool { return r != '0' })
		if k < 0 {
			return "" // zero
		}
		adjusted = -(k + 1) + exp
	}
	if adjusted >= maxReadingMagnitude {
		return fmt.Sprintf("%.40s is out of range: a number in properties must be below 10^%d in magnitude, the largest a reading holds (Decimal(%d, %d))",
			text, maxReadingMagnitude, ValuePrecision, ValueScale)
	}
	return ""
}

// DecodeObject reads a JSON object strictly, for the compatible APIs that
// ingest maps onto events: it returns the value of each of names (nil when
// absent) and the names of the other members, in order. One of names
// appearing twice, or a name that differs from one of names only by case,
// is a *FieldError naming it (other names are not compared), returned with
// the values read before it; a value that is not an object is ErrNotObject
// (null included), and input that is not JSON wraps ErrInvalidJSON. Values
// are checked to be JSON nested at most
// 2*MaxPropertiesDepth deep; the properties of an event are checked by
// ParseEvent.
func DecodeObject(raw []byte, names []string) (values []json.RawMessage, unknown []string, err error) {
	m, err := readObject(raw, names, nil, true)
	var fe *FieldError
	if err != nil && !errors.As(err, &fe) {
		return nil, nil, err
	}
	return m.values, m.unknown, err
}

package schemas

import (
	"encoding/json"
)

// PropertyPlan is the set of property paths that some meters read (their
// filters, group_by and value_property), compiled so that Scan extracts
// them from an event's raw properties in one pass without decoding the
// rest. It is the aggregator's fast path; DecodeProperties and Evaluate
// remain the reference, and FuzzPropertyViewDifferential checks that
// EvaluateView gives the same reading, match and error for every meter
// and every input.
//
// Exactness rests on two rules. Whatever Scan is not sure of — invalid or
// unusual JSON (a syntax error, nesting deeper than maxViewDepth, data
// after the object, a top level that is not an object), so every input
// encoding/json would refuse — is handed to DecodeProperties, whose map
// (or error) the view then answers from. And every value the meters read
// is built as encoding/json builds it: numbers as json.Number of the same
// text, strings with escapes or non-ASCII bytes unquoted by
// encoding/json itself, and the last of duplicate keys wins (a later
// duplicate of an object replaces everything read under the earlier one).
type PropertyPlan struct {
	root  planNode
	slots int
}

type planNode struct {
	seg      string
	slot     int  // index into PropertyView.vals
	end      int  // slots [slot, end) are this node and its descendants
	wanted   bool // a path of the plan ends here
	children []*planNode
}

// leafNode has no children: skip reads objects through it.
var leafNode planNode

// maxViewDepth bounds the nesting Scan follows; deeper properties take
// the DecodeProperties path (encoding/json allows 10,000 levels).
const maxViewDepth = 64

// Markers for the values whose content no meter reads: Evaluate tells an
// object or array only by its type (describe, scalarText).
var (
	objectMarker any = map[string]any(nil)
	arrayMarker  any = []any(nil)
)

// NewPropertyPlan compiles the paths that meters read.
func NewPropertyPlan(meters []*Meter) *PropertyPlan {
	pl := &PropertyPlan{}
	for _, m := range meters {
		m.eachPath(pl.add)
	}
	pl.slots = number(&pl.root, 0)
	return pl
}

// eachPath calls fn with every path Evaluate may look up.
func (m *Meter) eachPath(fn func(Path)) {
	if m.Filter != nil {
		m.Filter.eachPath(fn)
	}
	for _, p := range m.groupPaths {
		fn(p)
	}
	if !m.valuePath.IsZero() {
		fn(m.valuePath)
	}
}

func (f *Filter) eachPath(fn func(Path)) {
	for i := range f.Properties {
		if p := f.Properties[i].lookupPath(); !p.IsZero() {
			fn(p)
		}
	}
	for i := range f.And {
		f.And[i].eachPath(fn)
	}
	for i := range f.Or {
		f.Or[i].eachPath(fn)
	}
	if f.Not != nil {
		f.Not.eachPath(fn)
	}
}

func (pl *PropertyPlan) add(p Path) {
	n := &pl.root
	for _, seg := range p.segments {
		c := n.child(seg)
		if c == nil {
			c = &planNode{seg: seg}
			n.children = append(n.children, c)
		}
		n = c
	}
	n.wanted = true
}

func (n *planNode) child(seg string) *planNode {
	for _, c := range n.children {
		if c.seg == seg {
			return c
		}
	}
	return nil
}

// number gives the nodes under n slots from next on, depth first, so that
// each subtree's slots are contiguous; it returns the next free slot.
func number(n *planNode, next int) int {
	for _, c := range n.children {
		c.slot = next
		next = number(c, next+1)
		c.end = next
	}
	return next
}

// PropertyView answers Evaluate's lookups for one event's properties.
type PropertyView struct {
	plan *PropertyPlan
	raw  json.RawMessage
	vals []any // by slot; nil: absent or null
	// decoded is set when Scan handed the properties to
	// DecodeProperties, or a path outside the plan was asked for.
	decoded map[string]any
	slow    bool
}

// Scan extracts the plan's paths from raw properties. Its error is the
// one DecodeProperties returns for raw, and only then is there one.
func (pl *PropertyPlan) Scan(raw json.RawMessage) (*PropertyView, error) {
	v := &PropertyView{plan: pl, raw: raw, vals: make([]any, pl.slots)}
	if isAbsent(raw) {
		return v, nil
	}
	s := viewScanner{data: raw, vals: v.vals}
	s.skipSpace()
	ok := s.peek() == '{' && s.object(&pl.root, 0)
	if ok {
		s.skipSpace()
		ok = s.pos == len(s.data)
	}
	if !ok {
		return v, v.decode()
	}
	return v, nil
}

func (v *PropertyView) decode() error {
	props, err := DecodeProperties(v.raw)
	if err != nil {
		return err
	}
	v.decoded, v.slow = props, true
	return nil
}

func (v *PropertyView) lookup(p Path) (any, bool) {
	if !v.slow {
		n := &v.plan.root
		for _, seg := range p.segments {
			if n = n.child(seg); n == nil {
				break
			}
		}
		if n != nil && n.wanted && !p.IsZero() {
			x := v.vals[n.slot]
			return x, x != nil
		}
		// Not in the plan (a meter it was not built for): decode the
		// whole properties, as Evaluate would. Scan succeeded, so this
		// cannot fail.
		if err := v.decode(); err != nil {
			return nil, false
		}
	}
	return p.Lookup(v.decoded)
}

// EvaluateView is Evaluate on a view of the properties: the same reading,
// match and error as Evaluate on DecodeProperties of the same bytes.
func (m *Meter) EvaluateView(v *PropertyView) (Reading, bool, error) {
	return m.evaluate(v)
}

// viewScanner is a strict JSON scanner (RFC 8259, as encoding/json reads
// it) that records the values of a plan's paths. It returns false on
// anything it does not accept; the caller then uses encoding/json.
type viewScanner struct {
	data []byte
	pos  int
	vals []any
}

func (s *viewScanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *viewScanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// object reads an object at s.pos ('{'), recording the paths under n.
func (s *viewScanner) object(n *planNode, depth int) bool {
	if depth >= maxViewDepth {
		return false
	}
	s.pos++ // '{'
	s.skipSpace()
	if s.peek() == '}' {
		s.pos++
		return true
	}
	for {
		if s.peek() != '"' {
			return false
		}
		start := s.pos
		special, ok := s.str()
		if !ok {
			return false
		}
		var c *planNode
		if len(n.children) > 0 {
			c = n.keyChild(s.data[start:s.pos], special)
		}
		s.skipSpace()
		if s.peek() != ':' {
			return false
		}
		s.pos++
		s.skipSpace()
		if c == nil {
			if !s.skip(depth + 1) {
				return false
			}
		} else {
			// The last of duplicate keys wins, as in encoding/json's map.
			clear(s.vals[c.slot:c.end])
			if !s.value(c, depth+1) {
				return false
			}
		}
		s.skipSpace()
		switch s.peek() {
		case ',':
			s.pos++
			s.skipSpace()
		case '}':
			s.pos++
			return true
		default:
			return false
		}
	}
}

// keyChild returns the child of n that the quoted key names, or nil.
func (n *planNode) keyChild(quoted []byte, special bool) *planNode {
	key := quoted[1 : len(quoted)-1]
	if !special {
		for _, c := range n.children {
			if string(key) == c.seg {
				return c
			}
		}
		return nil
	}
	// Escapes or non-ASCII bytes: unquote as encoding/json does (invalid
	// UTF-8 becomes U+FFFD, which no path segment holds).
	var k string
	if json.Unmarshal(quoted, &k) != nil {
		return nil // s.str accepted it, so this does not happen
	}
	return n.child(k)
}

// value reads the value of node c at s.pos.
func (s *viewScanner) value(c *planNode, depth int) bool {
	switch s.peek() {
	case '{':
		if len(c.children) == 0 {
			if !s.skip(depth) {
				return false
			}
		} else if !s.object(c, depth) {
			return false
		}
		if c.wanted {
			s.vals[c.slot] = objectMarker
		}
		return true
	case '[':
		if !s.skip(depth) {
			return false
		}
		if c.wanted {
			s.vals[c.slot] = arrayMarker
		}
		return true
	case '"':
		start := s.pos
		special, ok := s.str()
		if !ok {
			return false
		}
		if c.wanted {
			quoted := s.data[start:s.pos]
			if special {
				var str string
				if json.Unmarshal(quoted, &str) != nil {
					return false
				}
				s.vals[c.slot] = str
			} else {
				s.vals[c.slot] = string(quoted[1 : len(quoted)-1])
			}
		}
		return true
	case 't':
		if !s.literal("true") {
			return false
		}
		if c.wanted {
			s.vals[c.slot] = true
		}
		return true
	case 'f':
		if !s.literal("false") {
			return false
		}
		if c.wanted {
			s.vals[c.slot] = false
		}
		return true
	case 'n':
		return s.literal("null") // null is absent: the slot stays nil
	}
	start := s.pos
	if !s.number() {
		return false
	}
	if c.wanted {
		s.vals[c.slot] = json.Number(s.data[start:s.pos])
	}
	return true
}

// skip reads and validates any value at s.pos.
func (s *viewScanner) skip(depth int) bool {
	switch s.peek() {
	case '{':
		return s.object(&leafNode, depth)
	case '[':
		if depth >= maxViewDepth {
			return false
		}
		s.pos++
		s.skipSpace()
		if s.peek() == ']' {
			s.pos++
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			s.skipSpace()
			switch s.peek() {
			case ',':
				s.pos++
				s.skipSpace()
			case ']':
				s.pos++
				return true
			default:
				return false
			}
		}
	case '"':
		_, ok := s.str()
		return ok
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	return s.number()
}

func (s *viewScanner) literal(lit string) bool {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return false
	}
	s.pos += len(lit)
	return true
}

// str reads a string at s.pos ('"'); special reports an escape or a
// non-ASCII byte, which encoding/json must unquote.
func (s *viewScanner) str() (special, ok bool) {
	i := s.pos + 1
	for i < len(s.data) {
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return special, true
		case c < 0x20:
			return false, false
		case c >= 0x80:
			special = true
			i++
		case c == '\\':
			special = true
			if i+1 >= len(s.data) {
				return false, false
			}
			switch s.data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s.data) {
					return false, false
				}
				for _, h := range s.data[i+2 : i+6] {
					if !isHexDigit(h) {
						return false, false
					}
				}
				i += 6
			default:
				return false, false
			}
		default:
			i++
		}
	}
	return false, false
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at s.pos.
func (s *viewScanner) number() bool {
	d, i := s.data, s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i < len(d) && isDecDigit(d[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDecDigit(d[i]) {
			return false
		}
		for i < len(d) && isDecDigit(d[i]) {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDecDigit(d[i]) {
			return false
		}
		for i < len(d) && isDecDigit(d[i]) {
			i++
		}
	}
	s.pos = i
	return true
}

func isDecDigit(c byte) bool { return '0' <= c && c <= '9' }

package schemas

import (
	"fmt"
	"regexp"
	"strings"
)

// Path is a property path such as "$.usage.tokens": a "$" followed by one
// or more ".name" segments into nested JSON objects. Names may hold
// letters, digits, '_', '-', ':' and '@'. Arrays are not indexed: metering
// rules read scalar fields, and a narrow language is one we can evaluate
// exactly the same way everywhere.
type Path struct {
	raw      string
	segments []string
}

var pathSegment = regexp.MustCompile(`^[A-Za-z0-9_:@-]{1,128}$`)

// ParsePath parses "$.a.b". A bare name "a" is accepted as "$.a".
func ParsePath(s string) (Path, error) {
	body := s
	switch {
	case strings.HasPrefix(s, "$."):
		body = s[2:]
	case s == "$" || s == "":
		return Path{}, fmt.Errorf("%q must name a property, such as $.tokens", s)
	case strings.HasPrefix(s, "$"):
		return Path{}, fmt.Errorf("%q must start with \"$.\"", s)
	}
	segments := strings.Split(body, ".")
	if len(segments) > 16 {
		return Path{}, fmt.Errorf("%q is nested more than 16 levels deep", s)
	}
	for _, seg := range segments {
		if !pathSegment.MatchString(seg) {
			return Path{}, fmt.Errorf("%q has an invalid segment %q (allowed: letters, digits, _ - : @)", s, seg)
		}
	}
	return Path{raw: "$." + body, segments: segments}, nil
}

// String returns the canonical "$.a.b" form.
func (p Path) String() string { return p.raw }

// IsZero reports whether p is the zero Path.
func (p Path) IsZero() bool { return len(p.segments) == 0 }

// Lookup returns the value at p in decoded JSON properties and whether it
// is present. A JSON null counts as absent.
func (p Path) Lookup(props map[string]any) (any, bool) {
	var cur any = props
	for _, seg := range p.segments {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[seg]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

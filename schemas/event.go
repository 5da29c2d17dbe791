package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits on event fields. They are part of the public contract (README,
// JSON Schema) so producers can validate before sending.
const (
	MaxEventIDLen    = 128
	MaxEventTypeLen  = 128
	MaxCustomerIDLen = 256
	MaxSourceLen     = 256
	// MaxFutureSkew is how far ahead of the server clock an event time may
	// be: producers' clocks drift, but an event an hour in the future is a bug.
	MaxFutureSkew = 5 * time.Minute
	// DefaultMaxEventAge bounds late arrivals; a month of billing plus slack.
	DefaultMaxEventAge = 35 * 24 * time.Hour
)

// Event is one validated usage event, as accepted by ingest.
type Event struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	CustomerID string          `json:"customer_id"`
	Time       time.Time       `json:"time"`
	Source     string          `json:"source,omitempty"`
	Properties json.RawMessage `json:"properties,omitempty"`
}

// AddressedTypePrefix starts the type of an event addressed to one meter.
// An event whose type is AddressedType(key) ("@<meter key>") is metered by
// the meter of that key alone, whatever that meter's event_type, and by no
// other meter: it is how the usage of one meter is written without another
// meter of the same event_type counting it too (PriceOps usage records are
// written so), now or when a meter created later is backfilled. A meter's
// event_type may not start with the prefix (Meter.Validate), so no meter
// sees an addressed event by its event_type.
const AddressedTypePrefix = "@"

// AddressedType is the type of an event metered by the meter of key alone.
// Keys are at most 63 characters, so it is within MaxEventTypeLen.
func AddressedType(meterKey string) string { return AddressedTypePrefix + meterKey }

// FieldError names the field of an event or meter that is invalid, so that
// the producer can fix exactly that.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// eventFields are the members of an event ParseEvent reads, in the order
// of the values readObject returns; subject and data are the CloudEvents
// names of customer_id and properties. Other members (CloudEvents'
// specversion, extensions) are checked to be JSON and ignored.
var eventFields = []string{"id", "type", "customer_id", "subject", "time", "source", "properties", "data"}

// eventChecked marks the members whose values are stored as properties:
// their numbers, depth and member names are checked (event_json.go).
var eventChecked = []bool{6: true, 7: true}

const (
	fieldID = iota
	fieldType
	fieldCustomerID
	fieldSubject
	fieldTime
	fieldSource
	fieldProperties
	fieldData
)

// EventRules are the time-dependent checks of ParseEvent.
type EventRules struct {
	Now    time.Time     // arrival time; also the default event time
	MaxAge time.Duration // events older than Now-MaxAge are rejected; 0 means DefaultMaxEventAge
}

// ParseEvent decodes and validates one JSON event. The returned error is a
// *FieldError when a field is at fault.
func ParseEvent(raw []byte, rules EventRules) (Event, error) {
	mem := scanMemories.Get().(*scanMemory)
	ev, shared, err := parseEvent(raw, rules, mem)
	mem.release()
	if shared {
		ev.Properties = append(json.RawMessage(nil), ev.Properties...)
	}
	return ev, err
}

// scanMemories keeps the memory of ParseEvent's scanner between calls.
var scanMemories = sync.Pool{New: func() any { return new(scanMemory) }}

// release drops mem's references into the events it read and returns it
// to scanMemories.
func (mem *scanMemory) release() {
	mem.values = [numEventFields]json.RawMessage{}
	clear(mem.path[:cap(mem.path)])
	clear(mem.keys[:cap(mem.keys)])
	scanMemories.Put(mem)
}

// numEventFields is len(eventFields).
const numEventFields = 8

// parseEvent is ParseEvent, except that the properties are a slice of raw
// when raw holds them compact (shared). The event's strings share one
// allocation when none of them holds an escape.
func parseEvent(raw []byte, rules EventRules, mem *scanMemory) (ev Event, shared bool, err error) {
	mem.values, mem.spaced = [numEventFields]json.RawMessage{}, [numEventFields]bool{}
	in := objectMembers{values: mem.values[:], spaced: mem.spaced[:]}
	err = readObjectInto(&in, raw, eventFields, eventChecked, false, mem)
	switch {
	case errors.Is(err, ErrNotObject) && string(bytes.TrimSpace(raw)) == "null":
		// null is read as an empty object, as encoding/json does: the
		// answer is that id is required.
	case errors.Is(err, ErrNotObject):
		return Event{}, false, fieldErr("event", "must be a JSON object")
	case errors.Is(err, ErrInvalidJSON):
		return Event{}, false, fieldErr("event", "%v", err)
	case err != nil:
		return Event{}, false, err
	}
	v := &mem.values
	var strs [4]eventString // id, type, customer_id, source
	if strs[0], err = requiredText(v[fieldID], "id", MaxEventIDLen); err != nil {
		return Event{}, false, err
	}
	if strs[1], err = requiredText(v[fieldType], "type", MaxEventTypeLen); err != nil {
		return Event{}, false, err
	}
	customer, field := v[fieldCustomerID], "customer_id"
	if isAbsent(customer) && !isAbsent(v[fieldSubject]) {
		customer, field = v[fieldSubject], "subject"
	}
	if strs[2], err = requiredText(customer, field, MaxCustomerIDLen); err != nil {
		return Event{}, false, err
	}
	if !isAbsent(v[fieldSource]) {
		if strs[3], err = requiredText(v[fieldSource], "source", MaxSourceLen); err != nil {
			return Event{}, false, err
		}
	}
	if ev.Time, err = parseEventTime(v[fieldTime], rules); err != nil {
		return Event{}, false, err
	}
	at, field := fieldProperties, "properties"
	if isAbsent(v[at]) && !isAbsent(v[fieldData]) {
		at, field = fieldData, "data"
	}
	if props := v[at]; !isAbsent(props) {
		if props[0] != '{' {
			return Event{}, false, fieldErr(field, "must be a JSON object")
		}
		if !validUnicode(props) {
			return Event{}, false, fieldErr(field, "must be valid UTF-8")
		}
		if mem.spaced[at] {
			ev.Properties = compactJSON(props)
		} else {
			ev.Properties, shared = props, true
		}
	}
	joinStrings(&strs, [4]*string{&ev.ID, &ev.Type, &ev.CustomerID, &ev.Source})
	return ev, shared, nil
}

// eventString is a string member of an event: its text as sent when it
// holds no escape, else its decoded value.
type eventString struct {
	text    []byte
	decoded string
}

// joinStrings sets each of dst to its string, the texts cut from one
// allocation.
func joinStrings(strs *[4]eventString, dst [4]*string) {
	n := 0
	for _, s := range strs {
		n += len(s.text)
	}
	var b strings.Builder
	b.Grow(n)
	for _, s := range strs {
		b.Write(s.text)
	}
	joined, at := b.String(), 0
	for i, s := range strs {
		if s.text == nil {
			*dst[i] = s.decoded
			continue
		}
		*dst[i] = joined[at : at+len(s.text)]
		at += len(s.text)
	}
}

// requiredText is requiredString without a copy of a string that holds
// no escape: only its text is returned.
func requiredText(raw json.RawMessage, field string, maxLen int) (eventString, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' || bytes.IndexByte(raw, '\\') >= 0 {
		s, err := requiredString(raw, field, maxLen)
		return eventString{decoded: s}, err
	}
	// raw is a JSON string (the scanner read it) without escapes: the
	// checks of requiredString, in its order, on the text.
	text := raw[1 : len(raw)-1]
	if len(text) == 0 {
		return eventString{}, fieldErr(field, "must not be empty")
	}
	if !utf8.Valid(text) {
		return eventString{}, fieldErr(field, "must be valid UTF-8")
	}
	if n := utf8.RuneCount(text); n > maxLen {
		return eventString{}, fieldErr(field, "is %d characters long, at most %d allowed", n, maxLen)
	}
	return eventString{text: text}, nil
}

func isAbsent(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

func requiredString(raw json.RawMessage, field string, maxLen int) (string, error) {
	if isAbsent(raw) {
		return "", fieldErr(field, "is required")
	}
	s, ok := plainString(raw)
	if !ok {
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fieldErr(field, "must be a string")
		}
	}
	if s == "" {
		return "", fieldErr(field, "must not be empty")
	}
	// Checked on the raw text: json.Unmarshal has already replaced invalid
	// UTF-8 with U+FFFD in s.
	if !validUnicode(raw) {
		return "", fieldErr(field, "must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > maxLen {
		return "", fieldErr(field, "is %d characters long, at most %d allowed", n, maxLen)
	}
	return s, nil
}

// plainString returns the text of a JSON string without escapes, which
// needs no decoding; ok is false for anything else.
func plainString(raw []byte) (s string, ok bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' || bytes.IndexByte(raw, '\\') >= 0 {
		return "", false
	}
	return string(raw[1 : len(raw)-1]), true
}

// plainText returns the text of a JSON string that json.Unmarshal reads
// as it is: without escapes, in UTF-8 (it replaces bytes that are not
// with U+FFFD). raw is one JSON value.
func plainText(raw []byte) (text []byte, ok bool) {
	if len(raw) < 2 || raw[0] != '"' || bytes.IndexByte(raw, '\\') >= 0 || !utf8.Valid(raw) {
		return nil, false
	}
	return raw[1 : len(raw)-1], true
}

// validUnicode reports whether a raw JSON value is valid UTF-8 without
// unpaired UTF-16 surrogate escapes ("\ud800"). encoding/json silently
// replaces either with U+FFFD, so ids that differ only in invalid bytes would
// become one id, and the second event would be dropped as a duplicate.
func validUnicode(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		r, ok := unicodeEscape(raw, i)
		if !ok {
			i++ // a two-character escape such as \" or \\
			continue
		}
		i += 5
		if !utf16.IsSurrogate(r) {
			continue
		}
		low, ok := unicodeEscape(raw, i+1)
		if r >= 0xDC00 || !ok || low < 0xDC00 || low > 0xDFFF {
			return false
		}
		i += 6
	}
	return true
}

// unicodeEscape decodes the escape "\uXXXX" at raw[i:].
func unicodeEscape(raw []byte, i int) (rune, bool) {
	if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
	return rune(n), err == nil
}

func parseEventTime(raw json.RawMessage, rules EventRules) (time.Time, error) {
	now := rules.Now
	if now.IsZero() {
		now = time.Now()
	}
	if isAbsent(raw) {
		return now.UTC(), nil
	}
	if text, ok := plainText(raw); ok {
		if t, ok := parseTimeFast(text); ok && timeAllowed(t, now, rules.MaxAge) {
			return t, nil
		}
	}
	// Anything else gets time.Parse's reading and the messages below.
	s, err := timeString(raw)
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fieldErr("time", "%q is not RFC 3339 (for example 2026-01-02T15:04:05Z)", s)
	}
	t = t.UTC()
	if t.After(now.Add(MaxFutureSkew)) {
		return time.Time{}, fieldErr("time", "%s is more than %s in the future", s, MaxFutureSkew)
	}
	maxAge := rules.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxEventAge
	}
	if t.Before(now.Add(-maxAge)) {
		return time.Time{}, fieldErr("time", "%s is older than the maximum event age of %s", s, maxAge)
	}
	if t.Year() < 1970 || t.Year() > 2105 {
		// ClickHouse DateTime covers 1970-2105.
		return time.Time{}, fieldErr("time", "%s is outside the supported years 1970-2105", s)
	}
	return t, nil
}

// timeAllowed reports whether parseEventTime accepts t, a time in UTC.
func timeAllowed(t, now time.Time, maxAge time.Duration) bool {
	if maxAge <= 0 {
		maxAge = DefaultMaxEventAge
	}
	return !t.After(now.Add(MaxFutureSkew)) && !t.Before(now.Add(-maxAge)) && t.Year() >= 1970 && t.Year() <= 2105
}

// parseTimeFast reads the usual form of an RFC 3339 time,
// 2006-01-02T15:04:05[.fraction of 1-9 digits](Z|+07:00|-07:00), every
// field in its range, as a time in UTC. ok is false for anything else,
// which is left to time.Parse; what it reads, time.Parse(time.RFC3339Nano)
// reads as the same instant (FuzzParseTimeFast).
func parseTimeFast(b []byte) (t time.Time, ok bool) {
	if len(b) < len("2006-01-02T15:04:05Z") || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := decimal4(b[0:4])
	month, ok2 := decimal2(b[5:7])
	day, ok3 := decimal2(b[8:10])
	hour, ok4 := decimal2(b[11:13])
	minute, ok5 := decimal2(b[14:16])
	sec, ok6 := decimal2(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 ||
		day > daysIn(time.Month(month), year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest, nsec := b[19:], 0
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			nsec = nsec*10 + int(rest[n]-'0')
			n++
		}
		if n == 1 || n > 10 {
			return time.Time{}, false
		}
		for range 10 - n {
			nsec *= 10
		}
		rest = rest[n:]
	}
	offset := 0
	switch {
	case len(rest) == 1 && rest[0] == 'Z':
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		hh, ok1 := decimal2(rest[1:3])
		mm, ok2 := decimal2(rest[4:6])
		if !ok1 || !ok2 || hh > 23 || mm > 59 {
			return time.Time{}, false
		}
		offset = (hh*60 + mm) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

func decimal2(b []byte) (int, bool) {
	if b[0] < '0' || b[0] > '9' || b[1] < '0' || b[1] > '9' {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

func decimal4(b []byte) (int, bool) {
	hi, ok1 := decimal2(b[0:2])
	lo, ok2 := decimal2(b[2:4])
	return hi*100 + lo, ok1 && ok2
}

// daysIn is the number of days of month in year.
func daysIn(month time.Month, year int) int {
	return time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// timeString is the string of the time member.
func timeString(raw json.RawMessage) (string, error) {
	if text, ok := plainText(raw); ok {
		return string(text), nil // what json.Unmarshal reads, without its cost
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fieldErr("time", "must be an RFC 3339 string such as 2026-01-02T15:04:05Z")
	}
	return s, nil
}

func compactJSON(raw []byte) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return append(json.RawMessage(nil), raw...)
	}
	return buf.Bytes()
}

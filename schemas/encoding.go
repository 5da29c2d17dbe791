package schemas

// This file is the only place that knows how an accepted event is laid out
// in Kafka. Ingest encodes with EncodeRecord, the aggregator decodes with
// DecodeRecord.
//
// Key:   "<org_id>/<customer_id>" (UTF-8). Organization ids cannot contain
//        '/', so the first '/' splits the key unambiguously. Keying by
//        organization and customer keeps one customer's events in one
//        partition, in order; the aggregator relies on that to decide which
//        version of a repeated event id came first.
// Value: a JSON object, version 1:
//        {"v":1,"org_id":"...","id":"...","type":"...","customer_id":"...",
//         "time":"<RFC 3339 nano, UTC>","source":"...","properties":{...},
//         "ingested_at":"<RFC 3339 nano, UTC>"}
//        JSON keeps records readable with stock Kafka tools; "v" lets a
//        later layout coexist with records still in the topic.
// Header "content-type: application/vnd.tally.event.v1+json".
//
// The layout is defined by encoding/json's reading and writing of
// recordValue (encodeRecordJSON, decodeRecordJSON). EncodeRecord and
// DecodeRecord are faster versions of the two that agree with them byte for
// byte and error for error (FuzzDecodeRecordDifferential and
// FuzzEncodeRecordDifferential compare them): they write and read the
// record as EncodeRecord writes it in one pass, copying the properties as
// they are, and leave anything else (escaped or repeated member names,
// nulls, properties to compact, errors and their messages) to encoding/json.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// RecordVersion is the value layout version written by EncodeRecord.
const RecordVersion = 1

// RecordContentType is the content-type header of every event record.
const RecordContentType = "application/vnd.tally.event.v1+json"

// ErrRecord marks a Kafka record that cannot be decoded; the aggregator
// dead-letters such records instead of stalling the partition.
var ErrRecord = errors.New("malformed event record")

// Record is an accepted event with the organization it belongs to and the
// time ingest accepted it.
type Record struct {
	OrgID      string
	Event      Event
	IngestedAt time.Time
}

type recordValue struct {
	V          int             `json:"v"`
	OrgID      string          `json:"org_id"`
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	CustomerID string          `json:"customer_id"`
	Time       time.Time       `json:"time"`
	Source     string          `json:"source,omitempty"`
	Properties json.RawMessage `json:"properties,omitempty"`
	IngestedAt time.Time       `json:"ingested_at"`
}

// RecordKey returns the Kafka key of an organization's customer.
func RecordKey(orgID, customerID string) []byte {
	return []byte(orgID + "/" + customerID)
}

// EncodeRecord returns the Kafka key and value of r. The key and the value
// share one allocation.
func EncodeRecord(r Record) (key, value []byte, err error) {
	// Properties that ingest accepted are compact JSON and are copied as
	// they are; anything else is compacted, or refused, by encoding/json.
	if len(r.Event.Properties) > 0 && !isCompactJSON(r.Event.Properties) {
		return encodeRecordJSON(r)
	}
	buf := make([]byte, 0, recordSize(&r))
	if _, key, value, ok := appendRecord(buf, &r, nil); ok {
		return key, value, nil
	}
	return encodeRecordJSON(r)
}

// recordSize is the length of r's key and value when no string needs an
// escape.
func recordSize(r *Record) int {
	return len(r.OrgID) + 1 + len(r.Event.CustomerID) + recordValueSize(*r)
}

// appendRecord appends the key and value of r to buf, as EncodeRecord
// writes them, and returns them capped (appending to one writes neither
// the other nor what follows); ingested is r.IngestedAt as the value
// writes it, or nil to write it here. r's properties must be compact JSON
// (isCompactJSON). ok is false for a time outside the years 0-9999,
// whose error encoding/json words.
func appendRecord(buf []byte, r *Record, ingested []byte) (out, key, value []byte, ok bool) {
	ev := &r.Event
	start := len(buf)
	buf = append(buf, r.OrgID...)
	buf = append(buf, '/')
	buf = append(buf, ev.CustomerID...)
	keyEnd := len(buf)
	buf = append(buf, `{"v":1,"org_id":`...)
	buf = appendJSONString(buf, r.OrgID)
	buf = append(buf, `,"id":`...)
	buf = appendJSONString(buf, ev.ID)
	buf = append(buf, `,"type":`...)
	buf = appendJSONString(buf, ev.Type)
	buf = append(buf, `,"customer_id":`...)
	buf = appendJSONString(buf, ev.CustomerID)
	buf = append(buf, `,"time":"`...)
	// A time in UTC is written without characters to escape; a year
	// outside 0-9999 is an error, worded by encoding/json.
	var err error
	if buf, err = ev.Time.UTC().AppendText(buf); err != nil {
		return buf[:start], nil, nil, false
	}
	buf = append(buf, '"')
	if ev.Source != "" {
		buf = append(buf, `,"source":`...)
		buf = appendJSONString(buf, ev.Source)
	}
	if len(ev.Properties) > 0 {
		buf = append(buf, `,"properties":`...)
		buf = append(buf, ev.Properties...)
	}
	buf = append(buf, `,"ingested_at":"`...)
	if ingested != nil {
		buf = append(buf, ingested...)
	} else if buf, err = r.IngestedAt.UTC().AppendText(buf); err != nil {
		return buf[:start], nil, nil, false
	}
	buf = append(buf, `"}`...)
	return buf, buf[start:keyEnd:keyEnd], buf[keyEnd:len(buf):len(buf)], true
}

// recordValueSize is the length of r's value when no string needs an
// escape.
func recordValueSize(r Record) int {
	const layout = len(`{"v":1,"org_id":"","id":"","type":"","customer_id":"","time":"","source":"","properties":,"ingested_at":""}`) +
		2*len("2006-01-02T15:04:05.999999999Z")
	ev := &r.Event
	return layout + len(r.OrgID) + len(ev.ID) + len(ev.Type) + len(ev.CustomerID) + len(ev.Source) + len(ev.Properties)
}

// encodeRecordJSON is EncodeRecord with encoding/json: the definition of
// the layout.
func encodeRecordJSON(r Record) (key, value []byte, err error) {
	// No HTML escaping: json.Marshal would rewrite '<', '>', '&', U+2028
	// and U+2029 inside the properties, and the aggregator must store them
	// byte for byte as ingest accepted them.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err = enc.Encode(recordValue{
		V:          RecordVersion,
		OrgID:      r.OrgID,
		ID:         r.Event.ID,
		Type:       r.Event.Type,
		CustomerID: r.Event.CustomerID,
		Time:       r.Event.Time.UTC(),
		Source:     r.Event.Source,
		Properties: r.Event.Properties,
		IngestedAt: r.IngestedAt.UTC(),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("encode event record: %w", err)
	}
	value = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return RecordKey(r.OrgID, r.Event.CustomerID), value, nil
}

// DecodeRecord parses a record value written by EncodeRecord. Errors wrap
// ErrRecord. The record's strings share one allocation, its properties are
// a copy.
func DecodeRecord(value []byte) (Record, error) {
	v, ok := readRecordValue(value)
	if !ok {
		return decodeRecordJSON(value)
	}
	return v.record()
}

// decodeRecordJSON is DecodeRecord with encoding/json: the definition of
// the layout.
func decodeRecordJSON(value []byte) (Record, error) {
	var v recordValue
	if err := json.Unmarshal(value, &v); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrRecord, err)
	}
	return v.record()
}

// record checks a decoded value and returns its record.
func (v *recordValue) record() (Record, error) {
	if v.V != RecordVersion {
		return Record{}, fmt.Errorf("%w: unsupported record version %d", ErrRecord, v.V)
	}
	var missing []string
	for _, f := range [...]struct{ name, val string }{
		{"org_id", v.OrgID}, {"id", v.ID}, {"type", v.Type}, {"customer_id", v.CustomerID},
	} {
		if f.val == "" {
			missing = append(missing, f.name) // in a fixed order: the reason is stored
		}
	}
	if len(missing) > 0 {
		return Record{}, fmt.Errorf("%w: missing %s", ErrRecord, strings.Join(missing, ", "))
	}
	if v.Time.IsZero() {
		return Record{}, fmt.Errorf("%w: missing time", ErrRecord)
	}
	return Record{
		OrgID: v.OrgID,
		Event: Event{
			ID:         v.ID,
			Type:       v.Type,
			CustomerID: v.CustomerID,
			Time:       v.Time.UTC(),
			Source:     v.Source,
			Properties: v.Properties,
		},
		IngestedAt: v.IngestedAt.UTC(),
	}, nil
}

// The members of a record value, as readRecordValue numbers them. The
// strings come first, in the order of recordStrings.
const (
	memberOrgID = iota
	memberID
	memberType
	memberCustomerID
	memberSource
	memberV
	memberTime
	memberIngestedAt
	memberProperties
	memberCount

	recordStrings = memberSource + 1
)

var recordMembers = [memberCount]string{"org_id", "id", "type", "customer_id", "source", "v", "time", "ingested_at", "properties"}

// readRecordValue reads value in one pass that also validates it, as
// encoding/json would read it into a recordValue. It returns ok false,
// leaving the value to encoding/json, for anything EncodeRecord does not
// write or that encoding/json reads in a way of its own: a name or a string
// with an escape or not in UTF-8, a name given twice or in another case (it
// matches names without regard to case), null, a "v" other than 1, a time
// that does not parse (for encoding/json's message), and a value nested
// deeper than maxSkipDepth.
func readRecordValue(value []byte) (v recordValue, ok bool) {
	var strs [recordStrings][]byte
	var seen [memberCount]bool
	var spaced bool // unused: whitespace is allowed here
	i := skipJSONSpace(value, 0, &spaced)
	if i == len(value) || value[i] != '{' {
		return v, false
	}
	i = skipJSONSpace(value, i+1, &spaced)
	if i < len(value) && value[i] == '}' {
		i++
	} else {
		for {
			name, end, ok := plainJSONString(value, i)
			if !ok {
				return v, false
			}
			m := recordMember(name)
			if m == memberCount+1 || (m < memberCount && seen[m]) {
				return v, false
			}
			i = skipJSONSpace(value, end, &spaced)
			if i == len(value) || value[i] != ':' {
				return v, false
			}
			i = skipJSONSpace(value, i+1, &spaced)
			switch {
			case m < recordStrings:
				if strs[m], i, ok = plainJSONString(value, i); !ok {
					return v, false
				}
			case m == memberTime || m == memberIngestedAt:
				var text []byte
				if text, i, ok = plainJSONString(value, i); !ok {
					return v, false
				}
				t := &v.Time
				if m == memberIngestedAt {
					t = &v.IngestedAt
				}
				if t.UnmarshalText(text) != nil { // as time.Time's UnmarshalJSON
					return v, false
				}
			case m == memberProperties && i < len(value) && value[i] == 'n': // null: RawMessage("null")
				return v, false
			default: // "v", the properties, or a member to skip
				start := i
				if i, _, ok = skipJSONValue(value, i); !ok {
					return v, false
				}
				switch m {
				case memberV:
					if string(value[start:i]) != "1" {
						return v, false
					}
					v.V = RecordVersion
				case memberProperties:
					v.Properties = append(json.RawMessage(nil), value[start:i]...)
				}
			}
			if m < memberCount {
				seen[m] = true
			}
			i = skipJSONSpace(value, i, &spaced)
			if i < len(value) && value[i] == ',' {
				i = skipJSONSpace(value, i+1, &spaced)
				continue
			}
			if i == len(value) || value[i] != '}' {
				return v, false
			}
			i++
			break
		}
	}
	if skipJSONSpace(value, i, &spaced) != len(value) {
		return v, false
	}
	// The strings are cut from one allocation.
	var all strings.Builder
	n := 0
	for _, str := range strs {
		n += len(str)
	}
	all.Grow(n)
	for _, str := range strs {
		all.Write(str)
	}
	joined, at := all.String(), 0
	for m, dst := range [recordStrings]*string{&v.OrgID, &v.ID, &v.Type, &v.CustomerID, &v.Source} {
		*dst = joined[at : at+len(strs[m])]
		at += len(strs[m])
	}
	return v, true
}

// plainJSONString reads the string that starts at data[i] and returns its
// contents and the index after it; ok is false for anything but a string
// without escapes in UTF-8.
func plainJSONString(data []byte, i int) (text []byte, end int, ok bool) {
	end, escaped, ok := skipJSONString(data, i)
	if !ok || escaped {
		return nil, end, false
	}
	text = data[i+1 : end-1]
	return text, end, utf8.Valid(text)
}

// recordMember numbers a member name: memberCount for a name the layout
// does not have, memberCount+1 for one encoding/json would take for a name
// of the layout (one in another case; any name that is not ASCII, since
// encoding/json folds 'ſ' to 'S' and 'ı' to 'I').
func recordMember(name []byte) int {
	for m, n := range recordMembers {
		if string(name) == n {
			return m
		}
	}
	for _, c := range name {
		if c >= utf8.RuneSelf {
			return memberCount + 1
		}
	}
	for _, n := range recordMembers {
		if strings.EqualFold(string(name), n) {
			return memberCount + 1
		}
	}
	return memberCount
}

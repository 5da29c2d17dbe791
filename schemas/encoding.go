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

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
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

// EncodeRecord returns the Kafka key and value of r.
func EncodeRecord(r Record) (key, value []byte, err error) {
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
// ErrRecord.
func DecodeRecord(value []byte) (Record, error) {
	var v recordValue
	if err := json.Unmarshal(value, &v); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrRecord, err)
	}
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

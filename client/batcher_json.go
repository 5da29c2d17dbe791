package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
)

// AddJSON queues one event given as a JSON object, sent exactly as it is
// (CloudEvents members, numbers of any precision), except that an object
// without an "id" member gets one, a UUID, first. It returns the id when it
// is a JSON string. Ingest validates the event; a malformed one comes back
// as a rejection.
func (b *Batcher) AddJSON(ctx context.Context, event json.RawMessage) (string, error) {
	id, enc, err := withID(event)
	if err != nil {
		return "", err
	}
	return b.enqueue(ctx, id, enc)
}

// withID returns the event's id and the event, with a generated id
// inserted when it has no "id" member (names are case-sensitive, as
// ingest reads them).
func withID(event json.RawMessage) (string, []byte, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(event, &members); err != nil {
		return "", nil, fmt.Errorf("tally: an event must be a JSON object: %w", err)
	}
	if raw, ok := members["id"]; ok {
		var id string
		_ = json.Unmarshal(raw, &id)
		return id, compact(event), nil
	}
	id := uuid.NewString()
	trimmed := bytes.TrimSpace(event)
	out := make([]byte, 0, len(trimmed)+len(id)+10)
	out = append(out, `{"id":"`...)
	out = append(out, id...)
	out = append(out, '"')
	if len(members) > 0 {
		out = append(out, ',')
	}
	out = append(out, trimmed[1:]...)
	return id, compact(out), nil
}

// compact drops insignificant whitespace (an NDJSON line's, a pretty
// printed file's): fewer bytes against the request limit.
func compact(b []byte) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}

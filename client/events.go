package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
)

// Ingest's default limits of one request (-ingest.max-events and
// -ingest.max-body-bytes; WithRequestLimits for others); the body limit
// counts the JSON before gzip.
const (
	MaxEventsPerRequest = 10_000
	MaxRequestBytes     = 5 << 20
)

// Event is one usage event. ID, Type and CustomerID identify it; an empty
// ID is replaced by a random UUID before the event is first sent. A zero
// Time means the arrival time at ingest.
type Event struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	CustomerID string    `json:"customer_id"`
	Time       time.Time `json:"time,omitzero"`
	Source     string    `json:"source,omitempty"`
	// Properties is what meters read: a map, a struct, or json.RawMessage
	// to send exact JSON (numbers beyond float64's precision included).
	Properties any `json:"properties,omitempty"`
}

// UnmarshalJSON keeps Properties as the exact JSON text, so that decoding
// and encoding an event again changes no number.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	var v struct {
		plain
		Properties json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*e = Event(v.plain)
	if len(v.Properties) > 0 && string(v.Properties) != "null" {
		e.Properties = v.Properties
	}
	return nil
}

// Rejection is one event ingest did not accept: its index in the request
// (and its NDJSON line), its id, the field at fault and why.
type Rejection struct {
	Index int    `json:"index"`
	Line  int    `json:"line,omitempty"`
	ID    string `json:"id"`
	Field string `json:"field"`
	Error string `json:"error"`
}

func (r Rejection) String() string {
	return fmt.Sprintf("event %d (id %q): %s: %s", r.Index, r.ID, r.Field, r.Error)
}

// SendResult is ingest's answer to one request: how many events it
// accepted, each one it rejected, and how many attempts it took.
type SendResult struct {
	Accepted int         `json:"accepted"`
	Rejected []Rejection `json:"rejected"`
	Attempts int         `json:"-"`
	// IDs are the ids of the events sent, in order, generated ones
	// included; Send sets them also when it fails. After a timeout or
	// spent retries ingest may have recorded the events: send them again
	// with these ids (an event sent again with a new id counts twice).
	IDs []string `json:"-"`
	// MaybeRecorded, with an error, says that ingest may have recorded
	// the events although the request failed: an attempt got no answer
	// after it may have been sent (a timeout, a reset connection, the
	// context's end), or a 502, a 503 other than overloaded or a 504.
	// Send them again with the same IDs, never new ones. Without it, the
	// failed request was not recorded (refused, 400, 401, 413, 429).
	MaybeRecorded bool `json:"-"`
}

// ErrTooLarge is a request over ingest's limits, refused before sending.
var ErrTooLarge = errors.New("tally: request over ingest's limits")

// Send posts events in one request and returns ingest's answer. Events
// without an ID get a UUID first (the caller's slice is not changed; the
// result's rejections and IDs name the ids sent: on an error that may
// hide a recorded request, a timeout or spent retries, send the events
// again with those ids). A request in which no event is
// valid is a result with every event rejected, not an error. The error is
// an *Error for answers that are not retried or once retries are spent,
// (a 503 after a failed publish keeps the result's Rejected: the events
// ingest found invalid), and ErrTooLarge for more events or bytes of JSON than ingest takes in a
// request (WithRequestLimits).
func (c *Client) Send(ctx context.Context, events ...Event) (SendResult, error) {
	if len(events) == 0 {
		return SendResult{Rejected: []Rejection{}}, nil
	}
	if len(events) > c.maxEvents {
		return SendResult{}, fmt.Errorf("%w: %d events, at most %d", ErrTooLarge, len(events), c.maxEvents)
	}
	encoded := make([][]byte, len(events))
	ids := make([]string, len(events))
	for i, ev := range events {
		id, b, err := encodeEvent(ev)
		if err != nil {
			return SendResult{}, fmt.Errorf("tally: event %d: %w", i, err)
		}
		encoded[i], ids[i] = b, id
	}
	res, err := c.sendEncoded(ctx, encoded)
	res.IDs = ids
	return res, err
}

// encodeEvent gives ev an id when it has none and encodes it.
func encodeEvent(ev Event) (id string, encoded []byte, err error) {
	if ev.ID == "" {
		ev.ID = uuid.NewString()
	}
	encoded, err = json.Marshal(ev)
	return ev.ID, encoded, err
}

// sendEncoded posts encoded events as one gzipped JSON array; the body is
// built once, so every attempt sends the same bytes.
func (c *Client) sendEncoded(ctx context.Context, events [][]byte) (SendResult, error) {
	size := 2 + len(events) - 1
	for _, e := range events {
		size += len(e)
	}
	if size > c.maxBytes {
		return SendResult{}, fmt.Errorf("%w: %d bytes of JSON, at most %d", ErrTooLarge, size, c.maxBytes)
	}
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	_, _ = zw.Write([]byte{'['})
	for i, e := range events {
		if i > 0 {
			_, _ = zw.Write([]byte{','})
		}
		_, _ = zw.Write(e)
	}
	_, _ = zw.Write([]byte{']'})
	if err := zw.Close(); err != nil {
		return SendResult{}, err
	}
	req := request{method: http.MethodPost, path: "/api/v1/events", body: body.Bytes(), header: http.Header{
		"Content-Type":     {"application/json"},
		"Content-Encoding": {"gzip"},
	}}
	resp, attempts, unsure, err := c.send(ctx, req)
	if err != nil {
		return SendResult{Attempts: attempts, MaybeRecorded: unsure}, err
	}
	res := SendResult{Attempts: attempts, MaybeRecorded: unsure && resp.status/100 != 2}
	switch {
	case resp.status == http.StatusAccepted || resp.status == http.StatusOK:
		if err := json.Unmarshal(resp.body, &res); err != nil {
			// Ingest answered 2xx: the valid events are recorded, whatever
			// the body says.
			res.MaybeRecorded = true
			return res, fmt.Errorf("tally: decode ingest's answer (%d): %w", resp.status, err)
		}
	case resp.status == http.StatusBadRequest:
		// No event valid: the details name each one.
		e := apiError(resp)
		if json.Unmarshal(e.Details, &res.Rejected) != nil || len(res.Rejected) == 0 {
			return res, e
		}
	default:
		e := apiError(resp)
		// A 503 after a failed publish still names the events ingest
		// rejected as invalid: those are rejected, whatever happened to
		// the others.
		var partial struct {
			Rejected []Rejection `json:"rejected"`
		}
		if resp.status == http.StatusServiceUnavailable && len(e.Details) > 0 && json.Unmarshal(e.Details, &partial) == nil {
			res.Rejected = partial.Rejected
		}
		return res, e
	}
	if res.Rejected == nil {
		res.Rejected = []Rejection{}
	}
	return res, nil
}

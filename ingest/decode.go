package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

// bodyFormat is how the events of a request body are framed.
type bodyFormat int

const (
	formatJSON   bodyFormat = iota // one event object, or an array of them
	formatNDJSON                   // one event object per line
)

// formatOf maps a Content-Type to a body format; ok is false for a type
// ingest does not read (415). A missing Content-Type is read as JSON
// because curl and many SDKs send none.
func formatOf(contentType string) (format bodyFormat, ok bool) {
	if strings.TrimSpace(contentType) == "" {
		return formatJSON, true
	}
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, false
	}
	switch mediaType {
	case "application/json", "application/cloudevents+json", "application/cloudevents-batch+json":
		return formatJSON, true
	case "application/x-ndjson":
		return formatNDJSON, true
	}
	return 0, false
}

// requestError is a problem with the request as a whole; it becomes one
// HTTP error response and no event of the request is accepted.
type requestError struct {
	status  int
	code    string // httpapi error code
	reason  string // label of tally_ingest_requests_rejected_total
	message string
}

func (e *requestError) Error() string { return e.message }

func tooLarge(maxBytes int64) *requestError {
	return &requestError{http.StatusRequestEntityTooLarge, httpapi.CodeTooLarge, requestTooLarge,
		fmt.Sprintf("the request body is larger than %d bytes (after decompression); split it into several requests", maxBytes)}
}

func malformed(format string, args ...any) *requestError {
	return &requestError{http.StatusBadRequest, httpapi.CodeBadRequest, requestMalformed, fmt.Sprintf(format, args...)}
}

// readRequestBody reads r's body with readBody, within the request's
// share of the in-flight byte budget (limits.go), if it has one.
func (h *handler) readRequestBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := io.Reader(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	res, _ := r.Context().Value(reservationKey{}).(*reservation)
	data, err := readBody(body, r.Header.Get("Content-Encoding"), h.cfg.MaxBodyBytes, res)
	if errors.Is(err, errOverBudget) {
		h.metrics.requestsLimited.WithLabelValues(limitInflightBytes).Inc()
		return nil, overloaded(h.cfg.MaxInflightBytes)
	}
	return data, err
}

// readBody returns the decompressed body. The limit applies to the bytes
// decompressed, not only to those sent: a 5 MiB gzip body can expand to
// gigabytes, so the decompressed stream is read through a limit and the
// request fails as soon as it passes maxBytes. The decompressed bytes are
// counted against res (nil: no budget).
func readBody(body io.Reader, contentEncoding string, maxBytes int64, res *reservation) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, readError(err, maxBytes)
		}
		defer zr.Close()
		body = zr
	default:
		return nil, &requestError{http.StatusUnsupportedMediaType, httpapi.CodeUnsupportedMedia, requestUnsupported,
			fmt.Sprintf("Content-Encoding %q is not supported; send gzip or no encoding", contentEncoding)}
	}
	if res != nil {
		body = &budgetReader{r: body, res: res}
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(body, maxBytes+1))
	if errors.Is(err, errOverBudget) {
		return nil, err
	}
	if err != nil {
		return nil, readError(err, maxBytes)
	}
	if n > maxBytes {
		return nil, tooLarge(maxBytes)
	}
	return buf.Bytes(), nil
}

// readError classifies a read error: the sent body passing the limit
// (http.MaxBytesReader) is 413, anything else is a broken body.
func readError(err error, maxBytes int64) error {
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return tooLarge(maxBytes)
	}
	if errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return malformed("Content-Encoding is gzip but the body is not valid gzip data: %v", err)
	}
	return malformed("cannot read the request body: %v", err)
}

// rawEvent is one event of a body before validation.
type rawEvent struct {
	raw  []byte
	line int // NDJSON line number (1-based); 0 for JSON bodies
}

// splitEvents frames body into events. It does not validate the events:
// schemas.ParseEvent does that, per event, so that one bad event does not
// cost the good ones next to it. Only JSON that cannot be framed at all
// fails the request.
func splitEvents(body []byte, format bodyFormat, maxEvents int) ([]rawEvent, error) {
	if format == formatNDJSON {
		return splitNDJSON(body, maxEvents)
	}
	start := len(body) - len(bytes.TrimLeft(body, " \t\r\n"))
	if start == len(body) {
		return nil, nil
	}
	switch body[start] {
	case '{':
		return splitSingle(body)
	case '[':
		return splitArray(body, maxEvents)
	}
	return nil, malformed("invalid JSON at %s: a JSON body must start with '{' (one event) or '[' (an array of events)", position(body, int64(start)))
}

func splitSingle(body []byte) ([]rawEvent, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, syntaxError(body, dec, err)
	}
	if err := expectEnd(body, dec.InputOffset()); err != nil {
		return nil, err
	}
	return []rawEvent{{raw: raw}}, nil
}

// splitArray frames the elements of a JSON array body in one pass
// (frameArray), leaving anything else to splitArrayJSON: a body that is
// not JSON, or holds more than maxEvents elements, or nests deeper than
// schemas.JSONValueEnd reads, gets encoding/json's answer and message.
func splitArray(body []byte, maxEvents int) ([]rawEvent, error) {
	if events, ok := frameArray(body, maxEvents); ok {
		return events, nil
	}
	return splitArrayJSON(body, maxEvents)
}

// frameArray returns the elements of the array body, each a slice of
// body without the whitespace around it, as splitArrayJSON does; ok is
// false for anything but an array of at most maxEvents JSON values
// followed by nothing but whitespace.
func frameArray(body []byte, maxEvents int) (events []rawEvent, ok bool) {
	i := skipSpace(body, 0)
	if i == len(body) || body[i] != '[' {
		return nil, false
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == ']' {
		return nil, skipSpace(body, i+1) == len(body)
	}
	events = make([]rawEvent, 0, min(maxEvents, len(body)/64+1))
	for {
		if len(events) == maxEvents {
			return nil, false
		}
		end, ok := schemas.JSONValueEnd(body, i)
		if !ok {
			return nil, false
		}
		events = append(events, rawEvent{raw: body[i:end:end]})
		i = skipSpace(body, end)
		if i == len(body) {
			return nil, false
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
			continue
		case ']':
			return events, skipSpace(body, i+1) == len(body)
		}
		return nil, false
	}
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(body []byte, i int) int {
	for i < len(body) {
		switch body[i] {
		case ' ', '\t', '\r', '\n':
			i++
			continue
		}
		break
	}
	return i
}

// splitArrayJSON reads the array element by element (Token/More) rather than
// into a []json.RawMessage, so that it can stop at maxEvents without
// buffering the rest, and so that an element that is valid JSON but not
// an event (a number, a string) becomes a rejection of that element.
// A syntax error cannot be skipped: after it, nothing tells where the
// next element starts.
func splitArrayJSON(body []byte, maxEvents int) ([]rawEvent, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // '['
		return nil, syntaxError(body, dec, err)
	}
	var events []rawEvent
	for dec.More() {
		if len(events) == maxEvents {
			return nil, tooMany(maxEvents)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntaxError(body, dec, err)
		}
		events = append(events, rawEvent{raw: raw})
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, syntaxError(body, dec, err)
	}
	if err := expectEnd(body, dec.InputOffset()); err != nil {
		return nil, err
	}
	return events, nil
}

// splitNDJSON returns the non-blank lines. A line that is not JSON is
// rejected on its own by ParseEvent: lines are independent.
func splitNDJSON(body []byte, maxEvents int) ([]rawEvent, error) {
	var events []rawEvent
	for lineNo := 1; len(body) > 0; lineNo++ {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if len(events) == maxEvents {
			return nil, tooMany(maxEvents)
		}
		events = append(events, rawEvent{raw: line, line: lineNo})
	}
	return events, nil
}

func tooMany(maxEvents int) *requestError {
	return &requestError{http.StatusRequestEntityTooLarge, httpapi.CodeTooLarge, requestTooMany,
		fmt.Sprintf("the request holds more than %d events; split it into several requests", maxEvents)}
}

func expectEnd(body []byte, offset int64) error {
	rest := body[offset:]
	trimmed := bytes.TrimLeft(rest, " \t\r\n")
	if len(trimmed) == 0 {
		return nil
	}
	at := offset + int64(len(rest)-len(trimmed))
	return malformed("invalid JSON at %s: unexpected data after the end of the JSON value; send several events as a JSON array, or as NDJSON with Content-Type: application/x-ndjson", position(body, at))
}

func syntaxError(body []byte, dec *json.Decoder, err error) error {
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return malformed("invalid JSON at %s: %v", position(body, syntax.Offset), err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return malformed("invalid JSON at %s: the body ends inside a JSON value", position(body, int64(len(body))))
	}
	return malformed("invalid JSON at %s: %v", position(body, dec.InputOffset()), err)
}

// position names a byte offset the way an editor shows it.
func position(body []byte, offset int64) string {
	offset = min(max(offset, 0), int64(len(body)))
	before := body[:offset]
	line := bytes.Count(before, []byte{'\n'}) + 1
	column := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("byte %d (line %d, column %d)", offset, line, column)
}

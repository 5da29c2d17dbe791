package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

// EventsRoute is the path events are posted to.
const EventsRoute = "/api/v1/events"

// Rejection names one event the request could not accept: its position
// in the request (and its NDJSON line), its id when it has a readable one,
// and the field at fault.
type Rejection struct {
	Index int    `json:"index"`
	Line  int    `json:"line,omitempty"`
	ID    string `json:"id"`
	Field string `json:"field"`
	Error string `json:"error"`
}

// Response is the 202 body; Rejected is [] rather than null when every
// event was accepted, so clients can range over it without a nil check.
type Response struct {
	Accepted int         `json:"accepted"`
	Rejected []Rejection `json:"rejected"`
}

// recordOverhead is what kafka-go adds to key and value when it sizes a
// message against BatchBytes (length fields, timestamp, the content-type
// header), rounded up.
const recordOverhead = 128

// recordHeaders is shared by every message; kafka-go only reads it.
var recordHeaders = []kafka.Header{{Key: "content-type", Value: []byte(schemas.RecordContentType)}}

// handler serves POST /api/v1/events behind httpapi.Authenticate.
type handler struct {
	cfg       Config
	publisher Publisher
	catalog   Catalog // nil: the routes that need a lookup answer 503
	metrics   *metrics
	logger    *slog.Logger
	now       func() time.Time
	rates     *rateLimits // nil: no per-organization rate limit
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrival := h.now().UTC() // one IngestedAt for the whole request
	org := httpapi.OrgID(r.Context())
	if org == "" {
		// Only reachable if the handler is mounted without Authenticate.
		h.logger.Error("events request without an organization; is the handler behind Authenticate?")
		httpapi.WriteError(w, http.StatusInternalServerError, httpapi.CodeInternal, "request has no organization")
		return
	}
	format, ok := formatOf(r.Header.Get("Content-Type"))
	if !ok {
		h.requestFailed(w, &requestError{http.StatusUnsupportedMediaType, httpapi.CodeUnsupportedMedia, requestUnsupported,
			fmt.Sprintf("Content-Type %q is not supported; send application/json, application/x-ndjson, application/cloudevents+json or application/cloudevents-batch+json", r.Header.Get("Content-Type"))})
		return
	}
	body, err := h.readRequestBody(w, r)
	if err != nil {
		h.requestFailed(w, err)
		return
	}
	// Lago's single-event envelope shares this route; one JSON object
	// with an "event" object and no "id" is Lago's, never a native event.
	if format == formatJSON && isLagoEnvelope(body) {
		h.serveLago(w, r, body, false)
		return
	}
	raws, err := splitEvents(body, format, h.cfg.MaxEvents)
	if err != nil {
		h.requestFailed(w, err)
		return
	}
	if len(raws) == 0 {
		h.metrics.requestRejected.WithLabelValues(requestEmpty).Inc()
		httpapi.WriteError(w, http.StatusBadRequest, httpapi.CodeValidation, "the request holds no events")
		return
	}
	h.metrics.requestEvents.Observe(float64(len(raws)))

	accepted, rejected, err := h.accept(org, raws, arrival)
	extendWriteDeadline(w)
	var limited *rateLimited
	switch {
	case errors.As(err, &limited):
		writeRateLimited(w, limited)
	case errors.Is(err, errNoneValid):
		httpapi.WriteErrorDetails(w, http.StatusBadRequest, httpapi.CodeValidation,
			fmt.Sprintf("none of the %d events is valid; details name each event and field", len(raws)), rejected)
	case err != nil:
		w.Header().Set("Retry-After", "1")
		httpapi.WriteErrorDetails(w, http.StatusServiceUnavailable, httpapi.CodeUnavailable,
			notAcknowledged("id"), Response{Accepted: 0, Rejected: rejected})
	default:
		httpapi.WriteJSON(w, http.StatusAccepted, Response{Accepted: accepted, Rejected: rejected})
	}
}

// notAcknowledged is the message of a 503 after a failed publish. It says
// what ingest knows (issue 6, defect 5): Kafka's last attempt may have
// written the events without acknowledging them, so the client must send
// them again exactly as they were; the aggregator keeps the first version
// of an identity, so a changed event sent again would be ignored whenever
// the first was written after all.
func notAcknowledged(identity string) string {
	return "Kafka did not acknowledge every event of this request: they may or may not have been recorded, " +
		"so none is reported accepted. Send the same events again, with the same " + identity + " and otherwise unchanged: " +
		"an event recorded twice counts once, and the first version recorded wins (a changed event sent again is ignored if the first was recorded)."
}

// answerWriteTimeout bounds the writing of an answer once it is known.
const answerWriteTimeout = 10 * time.Second

// extendWriteDeadline gives the answer a write deadline of its own,
// counted from now. A request waits for Kafka up to ingest.produce-timeout
// (kafkaPublisher), which together with a slow
// upload can outlast the server's write timeout, counted from the start of
// the request: the answer, 503 included, must still reach the client.
// Writers that cannot set deadlines (tests' recorders) are left alone.
func extendWriteDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(answerWriteTimeout))
}

// errNoneValid is accept's answer when every event was rejected.
var errNoneValid = errors.New("no valid event")

// accept is the HTTP-free core of every ingest route (Tally's own, Lago's
// and PriceOps'): it takes the events from the organization's rate limit,
// validates each event, produces the valid ones to Kafka in one call and
// waits for the acknowledgement. It returns a *rateLimited when the
// organization is over its rate (nothing else done), errNoneValid when no
// event is valid, and the publish error when Kafka did not acknowledge
// every record, in which case nothing may be reported as accepted.
// rejected is never nil.
func (h *handler) accept(org string, raws []rawEvent, arrival time.Time) (accepted int, rejected []Rejection, err error) {
	// Every event counts, valid or not: validating costs as much.
	if limited := h.rates.take(org, len(raws), time.Now()); limited != nil {
		h.metrics.requestsLimited.WithLabelValues(limitRate).Inc()
		return 0, []Rejection{}, limited
	}
	msgs, rejected := h.encode(org, raws, arrival)
	if len(msgs) == 0 {
		return 0, rejected, errNoneValid
	}
	if err := h.publish(org, msgs); err != nil {
		return 0, rejected, err
	}
	h.metrics.eventsAccepted.Add(float64(len(msgs)))
	return len(msgs), rejected, nil
}

// encode validates each event and turns the valid ones into Kafka
// messages. rejected is never nil.
func (h *handler) encode(org string, raws []rawEvent, arrival time.Time) (msgs []kafka.Message, rejected []Rejection) {
	rules := schemas.EventRules{Now: arrival, MaxAge: h.cfg.MaxEventAge}
	size := 0
	for _, re := range raws {
		size += len(re.raw)
	}
	// ParseEvent and EncodeRecord in one step, the records in shared buffers.
	records := schemas.NewRecordBuilder(org, arrival, rules, len(raws), size)
	msgs = make([]kafka.Message, 0, len(raws))
	rejected = []Rejection{}
	for i, re := range raws {
		key, value, err, encodeErr := records.Add(re.raw)
		if err != nil {
			h.metrics.eventsRejected.WithLabelValues(rejectReason(err, re.raw)).Inc()
			rejected = append(rejected, rejection(i, re, err))
			continue
		}
		if err := encodeErr; err != nil { // only if properties cannot be re-encoded
			fe := &schemas.FieldError{Field: "properties", Message: err.Error()}
			h.metrics.eventsRejected.WithLabelValues(rejectReason(fe, re.raw)).Inc()
			rejected = append(rejected, rejection(i, re, fe))
			continue
		}
		// kafka-go fails a whole WriteMessages call when one message is
		// larger than BatchBytes, and a retry would fail the same way: turn
		// it into a rejection of that event instead of a 503 forever.
		if size := int64(len(key) + len(value) + recordOverhead); size > h.cfg.KafkaBatchBytes {
			h.metrics.eventsRejected.WithLabelValues(reasonTooLarge).Inc()
			rejected = append(rejected, rejection(i, re, &schemas.FieldError{Field: "event",
				Message: fmt.Sprintf("is %d bytes as a Kafka record, at most %d allowed; make properties smaller", size, h.cfg.KafkaBatchBytes)}))
			continue
		}
		// The record timestamp is the arrival time, not the event time:
		// topic retention counts from it, and a 30-day-old event must not
		// be deleted before the aggregator has read it.
		msgs = append(msgs, kafka.Message{Key: key, Value: value, Headers: recordHeaders, Time: arrival})
	}
	return msgs, rejected
}

// publish hands all records of a request to Kafka in one call (one call
// per event would cost a round trip each; OpenMeter #702) and waits until
// Kafka is done with every one. The wait is detached from the client's
// connection: a client that hangs up does not change whether its records
// are written, and the outcome is still measured and logged. The
// publisher bounds the wait by ProduceTimeout (kafkaPublisher).
func (h *handler) publish(org string, msgs []kafka.Message) error {
	start := time.Now()
	err := h.publisher.Publish(context.Background(), msgs)
	h.metrics.produceDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		h.metrics.produceErrors.Inc()
		h.logger.Error("kafka did not acknowledge events; answered 503", "org", org, "records", len(msgs), "err", err)
	}
	return err
}

// requestFailed answers a request-level error.
func (h *handler) requestFailed(w http.ResponseWriter, err error) {
	var re *requestError
	if !errors.As(err, &re) {
		h.logger.Error("reading events request", "err", err)
		httpapi.WriteError(w, http.StatusInternalServerError, httpapi.CodeInternal, "internal error reading the request")
		return
	}
	h.metrics.requestRejected.WithLabelValues(re.reason).Inc()
	if re.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	httpapi.WriteError(w, re.status, re.code, re.message)
}

// rejection describes why event i was rejected.
func rejection(i int, re rawEvent, err error) Rejection {
	rej := Rejection{Index: i, Line: re.line, ID: rawEventID(re.raw), Field: "event", Error: err.Error()}
	var fe *schemas.FieldError
	if errors.As(err, &fe) {
		rej.Field, rej.Error = fe.Field, fe.Message
	}
	return rej
}

// rawEventID returns the id of an event that failed validation, when it
// has a string id, so that the producer can find the event. An overlong id
// is cut rather than echoed whole.
func rawEventID(raw []byte) string {
	// The first "id", read as ParseEvent reads it: exactly that name.
	values, _, _ := schemas.DecodeObject(raw, []string{"id"})
	if len(values) == 0 || values[0] == nil {
		return ""
	}
	var id string
	if json.Unmarshal(values[0], &id) != nil {
		return ""
	}
	if utf8.RuneCountInString(id) > schemas.MaxEventIDLen {
		id = string([]rune(id)[:schemas.MaxEventIDLen]) + "…"
	}
	return id
}

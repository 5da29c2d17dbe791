package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

// Lago's event ingestion: POST /api/v1/events with {"event": {...}} (the
// events route hands such bodies to serveLago) and POST
// /api/v1/events/batch with {"events": [...]}. Like Lago, a request is all
// or nothing: when any event is invalid the answer is 422 with Lago's
// validation_errors, keyed by event index for a batch, and no event is
// produced. Valid requests go through accept, the core of every ingest
// route, and are answered 200 with the events as Lago echoes them, once
// Kafka has acknowledged them (503 otherwise; a retry is safe).

// lagoError is Lago's error body; Message is Tally's addition, for a
// person, where Lago has no details to give.
type lagoError struct {
	Status       int    `json:"status"`
	Error        string `json:"error"`
	Code         string `json:"code,omitempty"`
	ErrorDetails any    `json:"error_details,omitempty"`
	Message      string `json:"message,omitempty"`

	reason     string // label of tally_ingest_requests_rejected_total, "" for none
	retryAfter bool   // a 503 that a retry may get past: sent with Retry-After
}

// lagoBadRequest is Lago's 400, whose error carries the message.
func lagoBadRequest(reason, format string, args ...any) *lagoError {
	return &lagoError{Status: http.StatusBadRequest, Error: "BadRequest: " + fmt.Sprintf(format, args...), reason: reason}
}

func lagoValidation(reason string, details any) *lagoError {
	return &lagoError{Status: http.StatusUnprocessableEntity, Error: "Unprocessable Entity", Code: "validation_errors",
		ErrorDetails: details, reason: reason}
}

func lagoUnavailable(code, message string) *lagoError {
	return &lagoError{Status: http.StatusServiceUnavailable, Error: "Service Unavailable", Code: code, Message: message, retryAfter: true}
}

// LagoEvent is an accepted event as Lago's API echoes it. Tally keeps no
// Lago customer or subscription ids, and no precise_total_amount_cents
// (Tally's charge models do not read it): those are null.
type LagoEvent struct {
	LagoID                  string          `json:"lago_id"` // see lagoEventID
	TransactionID           string          `json:"transaction_id"`
	LagoCustomerID          *string         `json:"lago_customer_id"`
	Code                    string          `json:"code"`
	Timestamp               string          `json:"timestamp"` // RFC 3339, milliseconds, UTC
	PreciseTotalAmountCents *string         `json:"precise_total_amount_cents"`
	Properties              json.RawMessage `json:"properties"`
	LagoSubscriptionID      *string         `json:"lago_subscription_id"`
	ExternalSubscriptionID  *string         `json:"external_subscription_id"`
	ExternalCustomerID      string          `json:"external_customer_id"`
	CreatedAt               string          `json:"created_at"` // arrival, RFC 3339 UTC
}

// lagoEventNamespace scopes the ids lagoEventID derives.
var lagoEventNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/tally-oss/tally/event"))

// lagoEventID is an event's lago_id: a name-based UUID (version 5) of its
// identity (org, customer_id, id). A retried event gets the same lago_id,
// as it is the same event to Tally.
func lagoEventID(org, customer, id string) string {
	name, _ := json.Marshal([]string{org, customer, id}) // unambiguous, whatever the ids hold
	return uuid.NewSHA1(lagoEventNamespace, name).String()
}

// serveLagoBatch serves POST /api/v1/events/batch behind Authenticate.
func (h *handler) serveLagoBatch(w http.ResponseWriter, r *http.Request) {
	if format, ok := formatOf(r.Header.Get("Content-Type")); !ok || format != formatJSON {
		h.lagoFailed(w, &lagoError{Status: http.StatusUnsupportedMediaType, Error: "Unsupported Media Type", Code: httpapi.CodeUnsupportedMedia,
			Message: "send the events as application/json", reason: requestUnsupported})
		return
	}
	body, err := h.readRequestBody(w, r)
	if err != nil {
		var re *requestError
		if errors.As(err, &re) {
			h.lagoFailed(w, &lagoError{Status: re.status, Error: http.StatusText(re.status), Code: re.code, Message: re.message, reason: re.reason,
				retryAfter: re.status == http.StatusServiceUnavailable})
			return
		}
		h.requestFailed(w, err)
		return
	}
	h.serveLago(w, r, body, true)
}

// serveLago answers a Lago body already read: {"event": {...}} when batch
// is false, {"events": [...]} when it is true.
func (h *handler) serveLago(w http.ResponseWriter, r *http.Request, body []byte, batch bool) {
	arrival := h.now().UTC()
	org := httpapi.OrgID(r.Context())
	if org == "" {
		h.logger.Error("lago events request without an organization; is the handler behind Authenticate?")
		h.lagoFailed(w, &lagoError{Status: http.StatusInternalServerError, Error: "Internal Server Error", Code: httpapi.CodeInternal})
		return
	}
	raws, lerr := decodeLagoEvents(body, batch)
	if lerr != nil {
		h.lagoFailed(w, lerr)
		return
	}
	h.metrics.requestEvents.Observe(float64(len(raws)))

	inputs := make([]lagoInput, len(raws))
	for i, raw := range raws {
		inputs[i] = parseLagoEvent(raw, arrival)
	}
	if lerr := h.resolveCustomers(r.Context(), org, inputs); lerr != nil {
		h.lagoFailed(w, lerr)
		return
	}
	events, natives := h.validateLago(inputs, arrival)
	if details := lagoDetails(inputs, batch); details != nil {
		h.lagoFailed(w, lagoValidation("", details))
		return
	}

	_, rejected, err := h.accept(org, natives, arrival)
	extendWriteDeadline(w)
	var limited *rateLimited
	switch {
	case errors.As(err, &limited):
		w.Header().Set("Retry-After", strconv.Itoa(limited.retryAfterSeconds()))
		h.lagoFailed(w, &lagoError{Status: http.StatusTooManyRequests, Error: "Too Many Requests", Code: codeRateLimited,
			ErrorDetails: limited.details(), Message: limited.Error()})
	case err != nil && !errors.Is(err, errNoneValid):
		// Kafka did not acknowledge the valid events. This wins over an
		// event rejected beside them: a 422 would tell the client to fix
		// and drop, and the valid events would be lost; the retry is
		// answered 422 for the rejected one once Kafka acknowledges.
		h.lagoFailed(w, lagoUnavailable(httpapi.CodeUnavailable, notAcknowledged("transaction_id")))
	case len(rejected) > 0 || errors.Is(err, errNoneValid):
		// Only an event too large for a Kafka record gets here (the rest
		// was validated above); the events beside it were accepted, which
		// a retry after the fix deduplicates.
		for _, rej := range rejected {
			inputs[rej.Index].errs.add(lagoFieldName(rej.Field), rej.Error)
		}
		h.lagoFailed(w, lagoValidation("", lagoDetails(inputs, batch)))
	default:
		out := make([]LagoEvent, len(events))
		for i, ev := range events {
			out[i] = lagoEcho(org, ev, inputs[i].subscription, arrival)
		}
		if batch {
			httpapi.WriteJSON(w, http.StatusOK, struct {
				Events []LagoEvent `json:"events"`
			}{out})
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, struct {
			Event LagoEvent `json:"event"`
		}{out[0]})
	}
}

// resolveCustomers looks up each subscription the events name (once per
// request): an event without external_customer_id is its subscription's
// customer's, and one with both must name the same customer. The lookups
// need the catalog; without one, or when it does not answer, the request
// is 503 and may be retried.
func (h *handler) resolveCustomers(ctx context.Context, org string, inputs []lagoInput) *lagoError {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.ProduceTimeout)
	defer cancel()
	found := map[string]*schemas.Subscription{} // nil: not in the catalog
	for i := range inputs {
		in := &inputs[i]
		if in.subscription == "" || len(in.errs) > 0 {
			continue
		}
		sub, looked := found[in.subscription]
		if !looked {
			if h.catalog == nil {
				return lagoUnavailable("catalog_unavailable",
					"this Tally has no catalog to look up external_subscription_id; send external_customer_id instead")
			}
			s, err := h.catalog.Subscription(ctx, org, in.subscription)
			switch {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				h.logger.Error("lago events: subscription lookup; answered 503", "org", org, "err", err)
				return lagoUnavailable("catalog_unavailable", "the catalog did not answer; retry the request")
			default:
				sub = &s
			}
			found[in.subscription] = sub
		}
		switch {
		case sub == nil && in.customer == "":
			in.errs.add("external_subscription_id", fmt.Sprintf("no subscription %q; create it first, or send external_customer_id", in.subscription))
		case sub == nil:
			// The customer is given: the event is metered for it, as
			// events of customers without a subscription are.
		case in.customer == "":
			in.customer = sub.ExternalCustomerID
		case in.customer != sub.ExternalCustomerID:
			in.errs.add("external_customer_id", fmt.Sprintf("is %q, but subscription %q is customer %q's", in.customer, in.subscription, sub.ExternalCustomerID))
		}
	}
	return nil
}

// validateLago validates every event without errors so far as the
// native route would (schemas.ParseEvent, with the same rules), so that
// a request is refused whole before any event is produced. It counts each
// invalid event in tally_ingest_events_rejected_total.
func (h *handler) validateLago(inputs []lagoInput, arrival time.Time) ([]schemas.Event, []rawEvent) {
	rules := schemas.EventRules{Now: arrival, MaxAge: h.cfg.MaxEventAge}
	events := make([]schemas.Event, len(inputs))
	natives := make([]rawEvent, len(inputs))
	for i := range inputs {
		in := &inputs[i]
		if len(in.errs) == 0 {
			natives[i] = rawEvent{raw: in.native()}
			ev, err := schemas.ParseEvent(natives[i].raw, rules)
			var fe *schemas.FieldError
			switch {
			case errors.As(err, &fe):
				in.errs.add(lagoFieldName(fe.Field), lagoMessage(fe.Message))
			case err != nil:
				in.errs.add("event", err.Error())
			}
			events[i] = ev
		}
		if len(in.errs) > 0 {
			h.metrics.eventsRejected.WithLabelValues(lagoRejectReason(in.errs)).Inc()
		}
	}
	return events, natives
}

// lagoDetails is Lago's error_details: the fields of the one event, or,
// for a batch, the fields by event index ({"0": {...}}). nil when no
// event has errors.
func lagoDetails(inputs []lagoInput, batch bool) any {
	byIndex := map[string]fieldErrors{}
	for i, in := range inputs {
		if len(in.errs) > 0 {
			byIndex[strconv.Itoa(i)] = in.errs
		}
	}
	switch {
	case len(byIndex) == 0:
		return nil
	case batch:
		return byIndex
	}
	return inputs[0].errs
}

func lagoFieldName(native string) string {
	if f, ok := lagoFields[native]; ok {
		return f
	}
	return native
}

// lagoRejectReason labels a rejected event by the native name of one of
// its fields, like the native route's invalid_<field>.
func lagoRejectReason(errs fieldErrors) string {
	for _, field := range []string{"event", "transaction_id", "code", "external_customer_id", "external_subscription_id", "timestamp", "properties"} {
		if errs[field] != nil {
			if field == "event" {
				return "invalid_event"
			}
			return "invalid_" + nativeFields[field]
		}
	}
	return "invalid_other"
}

// lagoEcho is the accepted event as Lago's response shows it.
func lagoEcho(org string, ev schemas.Event, subscription string, arrival time.Time) LagoEvent {
	props := ev.Properties
	if len(props) == 0 {
		props = json.RawMessage("{}")
	}
	var sub *string
	if subscription != "" {
		sub = &subscription
	}
	return LagoEvent{
		LagoID:                 lagoEventID(org, ev.CustomerID, ev.ID),
		TransactionID:          ev.ID,
		Code:                   ev.Type,
		Timestamp:              ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"),
		Properties:             props,
		ExternalSubscriptionID: sub,
		ExternalCustomerID:     ev.CustomerID,
		CreatedAt:              arrival.Format(time.RFC3339),
	}
}

// lagoFailed writes a Lago error and counts a refused request.
func (h *handler) lagoFailed(w http.ResponseWriter, e *lagoError) {
	if e.reason != "" {
		h.metrics.requestRejected.WithLabelValues(e.reason).Inc()
	}
	if e.retryAfter {
		w.Header().Set("Retry-After", "1")
	}
	httpapi.WriteJSON(w, e.Status, e)
}

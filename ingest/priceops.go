package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

// PriceOps usage records (../shared/seeds/priceops-customers-and-usage-api.txt):
//
//	POST /api/v1/integration/organization/{org_id}/usage
//	{"usage_record_id": "123457", "customer_id": "1008",
//	 "usage_data": [{"resource": "API", "quantity": 5000}]}
//
// Each item of usage_data becomes one native event, metered by the meter
// whose key is the resource, and by no other:
//
//	{"id": "<usage_record_id>:<resource>", "type": "@<resource>",
//	 "customer_id": <customer_id>, "properties": {<value_property>: quantity}}
//
// with the event time the arrival time. Its type addresses the resource's
// meter (schemas.AddressedType): the aggregator meters it with that meter
// alone, whatever other meters share the meter's event_type, including
// meters created later and backfilled from the stored events. The id makes a record idempotent
// on (usage_record_id, resource): a retried record is the same events, and
// the aggregator keeps the first version of each, so a retry that changes
// a quantity does not change the usage.
//
// A record is accepted whole or not at all: every problem is a 400 naming
// its field (usage_data[i].quantity), before anything is produced. The
// answer is 202 once Kafka has acknowledged every event, as for Tally's
// own events route, and 503 with Retry-After when it has not (a retry is
// safe, see above).

// MaxUsageItems bounds usage_data: a record is one customer's usage of a
// few resources, and every item is checked against its meter.
const MaxUsageItems = 100

// maxQuantityLen bounds the text of a quantity, and maxQuantityExponent
// its exponent. Any value a meter can hold (26 integer and 12 fractional
// digits) fits; beyond them a quantity is out of range.
const (
	maxQuantityLen      = 100
	maxQuantityExponent = 64
)

// requestInvalidRecord is the tally_ingest_requests_rejected_total reason
// of a usage record answered 400.
const requestInvalidRecord = "invalid_usage_record"

// fieldProblem names one field of a usage record that is invalid.
type fieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func problem(field, format string, args ...any) fieldProblem {
	return fieldProblem{Field: field, Message: fmt.Sprintf(format, args...)}
}

// usageAccepted is the 202 body of a usage record.
type usageAccepted struct {
	UsageRecordID string `json:"usage_record_id"`
	Accepted      int    `json:"accepted"`
}

// priceOpsUsage serves POST PriceOpsUsageRoute behind httpapi.Authenticate.
func (h *handler) priceOpsUsage(w http.ResponseWriter, r *http.Request) {
	arrival := h.now().UTC()
	org := httpapi.OrgID(r.Context())
	if org == "" {
		h.logger.Error("usage record without an organization; is the handler behind Authenticate?")
		httpapi.WriteError(w, http.StatusInternalServerError, httpapi.CodeInternal, "request has no organization")
		return
	}
	if r.PathValue("org_id") != org {
		httpapi.WriteError(w, http.StatusForbidden, httpapi.CodeForbidden,
			"ORG_ID in the path is not the organization of this API key; use your own organization id ("+org+")")
		return
	}
	if format, ok := formatOf(r.Header.Get("Content-Type")); !ok || format != formatJSON {
		h.requestFailed(w, &requestError{http.StatusUnsupportedMediaType, httpapi.CodeUnsupportedMedia, requestUnsupported,
			fmt.Sprintf("Content-Type %q is not supported; send a usage record as application/json", r.Header.Get("Content-Type"))})
		return
	}
	body, err := h.readRequestBody(w, r)
	if err != nil {
		h.requestFailed(w, err)
		return
	}
	rec, problems, err := parseUsageRecord(body)
	if err != nil {
		h.requestFailed(w, err)
		return
	}
	if h.catalog == nil {
		if len(problems) > 0 {
			h.invalidRecord(w, problems)
			return
		}
		w.Header().Set("Retry-After", "1")
		httpapi.WriteError(w, http.StatusServiceUnavailable, httpapi.CodeUnavailable,
			"usage records need the meter catalog, which this ingest service is not connected to; retry later")
		return
	}
	raws, meterProblems, err := h.usageEvents(r.Context(), org, rec)
	switch {
	case err != nil && len(problems) > 0:
		h.invalidRecord(w, problems) // the record must be fixed anyway
		return
	case err != nil:
		h.logger.Error("look up meters of a usage record; answered 503", "org", org, "err", err)
		w.Header().Set("Retry-After", "1")
		httpapi.WriteError(w, http.StatusServiceUnavailable, httpapi.CodeUnavailable,
			"cannot look up the meters of the usage record (ClickHouse); retry later")
		return
	case len(problems)+len(meterProblems) > 0:
		h.invalidRecord(w, sortProblems(append(problems, meterProblems...)))
		return
	}
	h.metrics.requestEvents.Observe(float64(len(raws)))

	accepted, rejected, err := h.accept(org, raws, arrival)
	extendWriteDeadline(w)
	var limited *rateLimited
	switch {
	case errors.As(err, &limited):
		writeRateLimited(w, limited)
	case err != nil && !errors.Is(err, errNoneValid):
		// Kafka did not acknowledge the valid items. This wins over an item
		// rejected beside them: a 400 would tell the client to fix and
		// drop, and the valid items would be lost.
		w.Header().Set("Retry-After", "1")
		httpapi.WriteErrorDetails(w, http.StatusServiceUnavailable, httpapi.CodeUnavailable,
			notAcknowledged("usage_record_id"),
			usageAccepted{UsageRecordID: rec.id, Accepted: 0})
	case len(rejected) > 0:
		// Only an event too large for a Kafka record gets here (the rest
		// is valid by construction). The accepted items stay: a corrected
		// retry has the same ids.
		problems = make([]fieldProblem, len(rejected))
		for i, rej := range rejected {
			problems[i] = problem(fmt.Sprintf("usage_data[%d]", rej.Index), "cannot become an event: %s: %s", rej.Field, rej.Error)
		}
		h.logger.Error("usage record made invalid events", "org", org, "rejected", rejected)
		h.invalidRecord(w, problems)
	default:
		httpapi.WriteJSON(w, http.StatusAccepted, usageAccepted{UsageRecordID: rec.id, Accepted: accepted})
	}
}

// invalidRecord answers 400 naming every field at fault.
func (h *handler) invalidRecord(w http.ResponseWriter, problems []fieldProblem) {
	h.metrics.requestRejected.WithLabelValues(requestInvalidRecord).Inc()
	parts := make([]string, len(problems))
	for i, p := range problems {
		parts[i] = p.Field + ": " + p.Message
	}
	httpapi.WriteErrorDetails(w, http.StatusBadRequest, httpapi.CodeValidation,
		"the usage record is invalid, nothing was accepted: "+strings.Join(parts, "; "), problems)
}

// sortProblems orders problems as the fields appear in a record: the
// record's own fields first, then each item's, in order.
func sortProblems(problems []fieldProblem) []fieldProblem {
	item := func(p fieldProblem) int {
		var i int
		if _, err := fmt.Sscanf(p.Field, "usage_data[%d]", &i); err != nil {
			return -1
		}
		return i
	}
	slices.SortStableFunc(problems, func(a, b fieldProblem) int { return cmp.Compare(item(a), item(b)) })
	return problems
}

// usageEvents reads the organization's meters (once per record) and
// turns every item into a native event, checking that the resource's
// meter meters it. err is a catalog failure (503); problems are the
// record's fault (400).
func (h *handler) usageEvents(ctx context.Context, org string, rec usageRecord) (raws []rawEvent, problems []fieldProblem, err error) {
	// Bounded like Kafka's acknowledgement: a ClickHouse that does not
	// answer is a 503 to retry, not a request held until the client
	// gives up.
	ctx, cancel := context.WithTimeout(ctx, h.cfg.ProduceTimeout)
	defer cancel()
	all, err := h.catalog.Meters(ctx, org)
	if err != nil {
		return nil, nil, fmt.Errorf("meters: %w", err)
	}
	byKey := make(map[string]schemas.Meter, len(all))
	for _, m := range all {
		byKey[m.Key] = m
	}
	for _, item := range rec.items {
		field := fmt.Sprintf("usage_data[%d]", item.index)
		meter, ok := byKey[item.resource]
		if !ok {
			problems = append(problems, problem(field+".resource",
				"no meter has the key %q; a resource is the key of one of your meters (create it with POST /api/v1/meters)", item.resource))
			continue
		}
		raw, p := usageEvent(rec, item, meter, field)
		if p != nil {
			problems = append(problems, *p)
			continue
		}
		raws = append(raws, rawEvent{raw: raw})
	}
	return raws, problems, nil
}

// usageEvent builds the native event of one item, addressed to the
// resource's meter, and checks it with the meter's own rules
// (schemas.Meter.Evaluate), so that nothing accepted here is dead-lettered
// or silently left out by the aggregator. No other meter is consulted: no
// other meter sees an addressed event.
func usageEvent(rec usageRecord, item usageItem, meter schemas.Meter, field string) ([]byte, *fieldProblem) {
	if err := meter.Validate(); err != nil { // prepares Evaluate; stored meters are valid
		p := problem(field+".resource", "the meter %q is not valid: %v", item.resource, err)
		return nil, &p
	}
	spec, err := meter.Aggregation.Spec()
	if err != nil {
		p := problem(field+".resource", "the meter %q: %v", item.resource, err)
		return nil, &p
	}
	props := map[string]any{}
	switch spec.Input {
	case schemas.InputNone:
		// A counting meter counts events, and an item is one event.
		if !item.quantity.Equal(decimal.NewFromInt(1)) {
			p := problem(field+".quantity", "is %s, but the meter %q counts events (%s), so an item counts exactly 1; "+
				"send quantity 1, or meter this resource with a SUM of a value_property", item.quantityText, item.resource, meter.Aggregation)
			return nil, &p
		}
	default:
		setPath(props, meter.ValueProperty, json.RawMessage(item.quantityText))
	}
	propsJSON, err := json.Marshal(props)
	if err != nil {
		p := problem(field, "cannot encode the properties: %v", err)
		return nil, &p
	}
	decoded, err := schemas.DecodeProperties(propsJSON)
	if err == nil {
		var matched bool
		_, matched, err = meter.Evaluate(decoded)
		if err == nil && !matched {
			p := problem(field+".resource", "the meter %q has a filter that this item does not pass: the event of a usage record "+
				"carries only the quantity (at the meter's value_property), so a filter on any other property never passes; "+
				"meter this resource with a meter whose filter a usage record can pass, or none", item.resource)
			return nil, &p
		}
	}
	if err != nil {
		var ev *schemas.EvalError
		at := field + ".resource"
		if errors.As(err, &ev) && (ev.Reason == schemas.ReasonValueOutOfRange || ev.Reason == schemas.ReasonValueTooPrecise) {
			at = field + ".quantity"
		}
		p := problem(at, "the meter %q cannot meter it: %v", item.resource, err)
		return nil, &p
	}
	raw, err := json.Marshal(map[string]any{
		"id":          rec.id + ":" + item.resource,
		"type":        schemas.AddressedType(meter.Key),
		"customer_id": rec.customerID,
		"properties":  json.RawMessage(propsJSON),
	})
	if err != nil {
		p := problem(field, "cannot encode the event: %v", err)
		return nil, &p
	}
	return raw, nil
}

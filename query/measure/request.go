package measure

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// MaxRangeDays bounds the requested range: a year, leap day included. The
// breakdown has a row per day and group, and a request spans at most this
// many days' worth of them.
const MaxRangeDays = 366

// usageRequest is a validated request body.
type usageRequest struct {
	ChargeID string
	// From and To bound the range, half-open [From, To). They may be
	// equal (Measure's own example is): an empty range has no usage.
	From, To time.Time
}

// requestBody is the wire shape. Pointers tell a missing field from an
// empty one.
type requestBody struct {
	ProductMetricPricingID *string      `json:"product_metric_pricing_id"`
	Period                 *periodInput `json:"period"`
}

type periodInput struct {
	StartDate *string `json:"start_date"`
	EndDate   *string `json:"end_date"`
}

// fieldError is one problem of a request, naming its field.
type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e fieldError) Error() string { return e.Field + ": " + e.Message }

// parseRequest decodes and validates a request body. Unknown fields are
// rejected: a misspelt "period" silently ignored would answer for the
// wrong range. Every problem is reported, each naming its field.
func parseRequest(raw []byte) (usageRequest, []fieldError) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var in requestBody
	if err := dec.Decode(&in); err != nil {
		return usageRequest{}, []fieldError{decodeError(err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return usageRequest{}, []fieldError{{"body", "must be a single JSON object, found more after it"}}
	}
	var (
		req  usageRequest
		errs []fieldError
	)
	switch {
	case in.ProductMetricPricingID == nil:
		errs = append(errs, fieldError{"product_metric_pricing_id", "is required: the id of a charge of the subscription's plan"})
	case strings.TrimSpace(*in.ProductMetricPricingID) == "":
		errs = append(errs, fieldError{"product_metric_pricing_id", "must not be empty"})
	default:
		req.ChargeID = *in.ProductMetricPricingID
	}
	if in.Period == nil {
		return req, append(errs, fieldError{"period", "is required: {\"start_date\": ..., \"end_date\": ...} in RFC 3339"})
	}
	var fromOK, toOK bool
	req.From, fromOK, errs = parseDate(in.Period.StartDate, "period.start_date", errs)
	req.To, toOK, errs = parseDate(in.Period.EndDate, "period.end_date", errs)
	if fromOK && toOK {
		switch {
		case req.To.Before(req.From):
			errs = append(errs, fieldError{"period.end_date", "must not be before period.start_date"})
		case req.To.Sub(req.From) > MaxRangeDays*24*time.Hour:
			errs = append(errs, fieldError{"period", fmt.Sprintf("spans more than %d days; ask for a shorter range", MaxRangeDays)})
		}
	}
	return req, errs
}

func parseDate(v *string, field string, errs []fieldError) (time.Time, bool, []fieldError) {
	if v == nil {
		return time.Time{}, false, append(errs, fieldError{field, "is required (RFC 3339, e.g. 2023-11-07T05:31:56Z)"})
	}
	t, err := time.Parse(time.RFC3339Nano, *v)
	if err != nil {
		return time.Time{}, false, append(errs, fieldError{field, fmt.Sprintf("%q is not an RFC 3339 time such as 2023-11-07T05:31:56Z", *v)})
	}
	return t, true, errs
}

func decodeError(err error) fieldError {
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return fieldError{typeErr.Field, "must be of JSON type " + jsonType(typeErr.Type.Kind().String())}
	case errors.As(err, &typeErr):
		return fieldError{"body", "must be a JSON object"}
	case errors.Is(err, io.EOF):
		return fieldError{"body", "is empty: send {\"product_metric_pricing_id\": ..., \"period\": {...}}"}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fieldError{strings.Trim(name, `"`), "unknown field"}
	}
	return fieldError{"body", "invalid JSON: " + err.Error()}
}

// jsonType names a Go kind as the JSON type a client sends.
func jsonType(kind string) string {
	switch kind {
	case "ptr", "string":
		return "string"
	case "struct", "map":
		return "object"
	}
	return kind
}

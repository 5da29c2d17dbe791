package lago

import (
	"context"
	"errors"
	"net/http"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/query/rating"
	"github.com/tally-oss/tally/query/usage"
)

// Error is Lago's error body: the HTTP status repeated, its reason
// phrase, a stable code, and per-field messages for validation errors
// ({"external_subscription_id": ["value_is_mandatory"]}). Message is
// Tally's addition, for a person, where Lago has no details to give.
type Error struct {
	Status       int                 `json:"status"`
	Error        string              `json:"error"`
	Code         string              `json:"code,omitempty"`
	ErrorDetails map[string][]string `json:"error_details,omitempty"`
	Message      string              `json:"message,omitempty"`
}

// writeNotFound answers 404 with code "<resource>_not_found".
func writeNotFound(w http.ResponseWriter, resource string) {
	httpapi.WriteJSON(w, http.StatusNotFound, Error{Status: http.StatusNotFound, Error: "Not Found", Code: resource + "_not_found"})
}

// writeValidation answers 422 validation_errors with details by field.
func writeValidation(w http.ResponseWriter, details map[string][]string) {
	httpapi.WriteJSON(w, http.StatusUnprocessableEntity, Error{Status: http.StatusUnprocessableEntity,
		Error: "Unprocessable Entity", Code: "validation_errors", ErrorDetails: details})
}

func writeMethodNotAllowed(w http.ResponseWriter, code string) {
	httpapi.WriteJSON(w, http.StatusMethodNotAllowed, Error{Status: http.StatusMethodNotAllowed, Error: "Method Not Allowed", Code: code})
}

// failureOf is the answer to an error of the catalog, ClickHouse or
// pricing, classified as the native routes classify storage errors
// (query/errors.go): ClickHouse unreachable, busy or slower than the
// timeout is 503, which a client retries; a result over the row limit,
// or a total out of the range Tally represents exactly, is 422, which a
// retry does not change; anything else is a bug of ours, 500.
func failureOf(ctx context.Context, err error) Error {
	unavailable := func(code, message string) Error {
		return Error{Status: http.StatusServiceUnavailable, Error: "Service Unavailable", Code: code, Message: message}
	}
	if errors.Is(err, usage.ErrTooManyRows) {
		return Error{Status: http.StatusUnprocessableEntity, Error: "Unprocessable Entity", Code: "too_many_rows",
			Message: "the current usage has more rows than the server's limit (query.max-rows); fewer group_by keys on the charged meters keep it smaller"}
	}
	if errors.Is(err, usage.ErrOutOfRange) {
		var rangeErr *usage.OutOfRangeError
		message := usage.ErrOutOfRange.Error()
		if errors.As(err, &rangeErr) {
			message = rangeErr.Error() // names the meter
		}
		return Error{Status: http.StatusUnprocessableEntity, Error: "Unprocessable Entity", Code: "usage_out_of_range",
			Message: message + "; the current usage cannot be priced"}
	}
	if errors.Is(err, rating.ErrOverflow) {
		return Error{Status: http.StatusUnprocessableEntity, Error: "Unprocessable Entity", Code: "amount_out_of_range",
			Message: "an amount of the current usage exceeds the range of amounts in cents; it cannot be priced"}
	}
	switch chclient.Classify(ctx, err) {
	case chclient.FailureCanceled:
		return unavailable("canceled", "the request was canceled") // nobody reads it
	case chclient.FailureTimeout:
		return unavailable("timeout", "ClickHouse did not answer in time; retry later")
	case chclient.FailureUnavailable:
		return unavailable("unavailable", "ClickHouse is unavailable; retry later")
	}
	return Error{Status: http.StatusInternalServerError, Error: "Internal Server Error", Code: "internal"}
}

// writeFailure answers err as failureOf classifies it, with Retry-After
// on a 503.
func writeFailure(ctx context.Context, w http.ResponseWriter, err error) Error {
	e := failureOf(ctx, err)
	if e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	httpapi.WriteJSON(w, e.Status, e)
	return e
}

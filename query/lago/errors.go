package lago

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tally-oss/tally/internal/httpapi"
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
// timeout is 503, which a client retries; a result over the row limit is
// 422, which a retry does not change; anything else is a bug of ours,
// 500.
func failureOf(ctx context.Context, err error) Error {
	unavailable := func(code, message string) Error {
		return Error{Status: http.StatusServiceUnavailable, Error: "Service Unavailable", Code: code, Message: message}
	}
	switch {
	case errors.Is(err, usage.ErrTooManyRows):
		return Error{Status: http.StatusUnprocessableEntity, Error: "Unprocessable Entity", Code: "too_many_rows",
			Message: "the current usage has more rows than the server's limit (query.max-rows); fewer group_by keys on the charged meters keep it smaller"}
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return unavailable("canceled", "the request was canceled") // nobody reads it
	case errors.Is(err, context.DeadlineExceeded):
		return unavailable("timeout", "ClickHouse did not answer in time; retry later")
	case retryable(err):
		return unavailable("unavailable", "ClickHouse is unavailable; retry later")
	}
	return Error{Status: http.StatusInternalServerError, Error: "Internal Server Error", Code: "internal"}
}

// retryableCodes are ClickHouse's "busy or too slow right now" errors,
// worth a retry, rather than a bug in the query.
var retryableCodes = map[int32]bool{
	159: true, // TIMEOUT_EXCEEDED
	202: true, // TOO_MANY_SIMULTANEOUS_QUERIES
	241: true, // MEMORY_LIMIT_EXCEEDED
}

// retryable reports whether err is ClickHouse being unreachable (a
// refused or timed-out connection, one closed midway) or busy.
func retryable(err error) bool {
	var ex *clickhouse.Exception
	var netErr net.Error
	switch {
	case errors.As(err, &ex):
		return retryableCodes[ex.Code]
	case errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, clickhouse.ErrAcquireConnTimeout), errors.Is(err, clickhouse.ErrConnectionClosed):
		return true
	}
	return false
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

package query

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

// errorDetail is one entry of an error's details: the field of a meter
// definition, or the query parameter, at fault.
type errorDetail struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *errorDetail) Error() string { return e.Field + ": " + e.Message }

// fieldErrors flattens the *schemas.FieldError values of a (possibly
// errors.Join-ed, possibly nested) error into details. Anything else is
// reported against the whole meter.
func fieldErrors(err error) []*errorDetail {
	var out []*errorDetail
	var walk func(error)
	walk = func(err error) {
		var fe *schemas.FieldError
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case *schemas.FieldError:
			out = append(out, &errorDetail{Field: e.Field, Message: e.Message})
		default:
			if errors.As(err, &fe) {
				out = append(out, &errorDetail{Field: fe.Field, Message: fe.Message})
			} else if err != nil {
				out = append(out, &errorDetail{Field: "meter", Message: err.Error()})
			}
		}
	}
	walk(err)
	return out
}

// joinMessages renders details as one line for the error message.
func joinMessages(details []*errorDetail) string {
	parts := make([]string, len(details))
	for i, d := range details {
		parts[i] = d.Error()
	}
	return strings.Join(parts, "; ")
}

// queryValues parses the request's query string; a malformed one is
// answered 400 here and ok is false.
func queryValues(w http.ResponseWriter, r *http.Request) (values url.Values, ok bool) {
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, httpapi.CodeBadRequest, "the query string is malformed: "+err.Error())
		return nil, false
	}
	return values, true
}

// writeInvalidParams answers 400 with every invalid query parameter in
// details.
func writeInvalidParams(w http.ResponseWriter, details []*errorDetail) {
	httpapi.WriteErrorDetails(w, http.StatusBadRequest, httpapi.CodeValidation, "invalid query parameters: "+joinMessages(details), details)
}

// quoteKey quotes a key from the URL for a message; it may be anything.
func quoteKey(key string) string { return strconv.Quote(key) }

// writeStorageError answers a failed ClickHouse operation as
// chclient.Classify says (unreachable, busy or slower than the timeout:
// 503, retry later; anything else: a bug of ours, 500) and logs it, once,
// here.
func writeStorageError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, action string, err error) {
	writeStorageErrorAdvising(w, r, logger, action, err, "retry later")
}

// writeStorageErrorAdvising is writeStorageError with the advice a
// timeout gets, which depends on what the route takes (a usage query can
// be narrowed by its parameters).
func writeStorageErrorAdvising(w http.ResponseWriter, r *http.Request, logger *slog.Logger, action string, err error, timeoutAdvice string) {
	switch chclient.Classify(r.Context(), err) {
	case chclient.FailureCanceled:
		// The client went away; nobody reads the answer.
		logger.Debug(action+": client gone", "path", r.URL.Path)
		httpapi.WriteError(w, http.StatusServiceUnavailable, httpapi.CodeUnavailable, "request canceled")
	case chclient.FailureTimeout:
		logger.Warn(action+": timed out", "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		httpapi.WriteError(w, http.StatusServiceUnavailable, httpapi.CodeUnavailable,
			action+": ClickHouse did not answer in time; "+timeoutAdvice)
	case chclient.FailureUnavailable:
		logger.Error(action+" failed", "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		httpapi.WriteError(w, http.StatusServiceUnavailable, httpapi.CodeUnavailable, action+": ClickHouse is unavailable; retry later")
	default:
		logger.Error(action+" failed", "path", r.URL.Path, "err", err)
		httpapi.WriteError(w, http.StatusInternalServerError, httpapi.CodeInternal, action+" failed; the error is logged")
	}
}

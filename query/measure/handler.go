package measure

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/query/billing"
	"github.com/tally-oss/tally/query/usage"
)

// Deps is what the Measure API reads.
type Deps struct {
	Billing *billing.Service
	Usage   *usage.Service
	// Idempotency saves responses for Idempotency-Key; nil ignores the
	// header (the endpoint only reads).
	Idempotency Idempotency
	Logger      *slog.Logger
	// Timeout bounds one request's reads; 0 means none.
	Timeout time.Duration
	// Now is the clock of the idempotency window; nil is time.Now.
	Now func() time.Time
	// MaxRows bounds the breakdown rows of one response, over all its
	// periods (query.max-rows); 0 is DefaultMaxRows.
	MaxRows int
}

// UsagePattern is the route of Measure's "Get Subscription Usage".
const UsagePattern = "POST /api/v1/companies/{company_id}/subscriptions/{id}/usage"

// maxBodyBytes bounds a request body; a valid one is a few hundred bytes.
const maxBodyBytes = 64 << 10

// Routes returns the Measure API's routes; the serving component adds
// authentication and metrics.
func Routes(d Deps) []httpapi.Route {
	h := &handler{billing: d.Billing, usage: d.Usage, idem: d.Idempotency, logger: d.Logger, timeout: d.Timeout, now: d.Now,
		maxRows: d.MaxRows}
	if h.maxRows <= 0 {
		h.maxRows = DefaultMaxRows
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	h.logger = h.logger.With("component", "measure")
	if h.now == nil {
		h.now = time.Now
	}
	return []httpapi.Route{{Pattern: UsagePattern, Handler: h.serveUsage}}
}

type handler struct {
	billing *billing.Service
	usage   *usage.Service
	idem    Idempotency
	logger  *slog.Logger
	timeout time.Duration
	now     func() time.Time
	maxRows int
}

// response is a rendered answer: what is written, and what an
// Idempotency-Key saves and replays byte for byte.
type response struct {
	status   int
	body     []byte
	replayed bool
	// notStored marks a success to a request with an Idempotency-Key that
	// was not saved (too large, or the store failed): a retry computes it
	// again. The header Idempotent-Stored: false tells the client.
	notStored bool
}

func (resp response) write(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	if resp.replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if resp.notStored {
		w.Header().Set("Idempotent-Stored", "false")
	}
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body) // the client went away; nothing left to tell it
}

// render encodes v as httpapi.WriteJSON does.
func render(status int, v any) response {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return errorResponse(http.StatusInternalServerError, httpapi.CodeInternal, "encode the response: "+err.Error(), nil)
	}
	return response{status: status, body: buf.Bytes()}
}

func errorResponse(status int, code, message string, details any) response {
	return render(status, httpapi.Error{Code: code, Message: message, Details: details})
}

// notFound is the answer for an unknown subscription, and for any
// subscription of another organization: the two cannot be told apart.
func notFound(subscriptionID string) response {
	return errorResponse(http.StatusNotFound, httpapi.CodeNotFound,
		fmt.Sprintf("subscription %s not found", strconv.Quote(subscriptionID)), nil)
}

func (h *handler) serveUsage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if h.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.timeout)
		defer cancel()
	}
	orgID, subID := httpapi.OrgID(ctx), r.PathValue("id")
	if orgID == "" || !sameCompany(r.PathValue("company_id"), orgID) {
		notFound(subID).write(w)
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		errorResponse(http.StatusRequestEntityTooLarge, httpapi.CodeTooLarge,
			fmt.Sprintf("the request body is larger than %d bytes", maxBodyBytes), nil).write(w)
		return
	case err != nil:
		errorResponse(http.StatusBadRequest, httpapi.CodeBadRequest, "could not read the request body: "+err.Error(), nil).write(w)
		return
	}
	compute := func() response { return h.answer(ctx, orgID, subID, raw) }
	key := r.Header.Get("Idempotency-Key")
	switch {
	case key == "" || h.idem == nil:
		compute().write(w)
	case len(key) > maxIdempotencyKey:
		errorResponse(http.StatusBadRequest, httpapi.CodeValidation, "Idempotency-Key is longer than 255 characters",
			[]fieldError{{"Idempotency-Key", fmt.Sprintf("is longer than %d characters", maxIdempotencyKey)}}).write(w)
	default:
		h.idempotent(ctx, orgID, key, requestHash(subID, raw), compute).write(w)
	}
}

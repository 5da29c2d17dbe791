package measure

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"
)

// Idempotency keeps the responses saved for requests that carry an
// Idempotency-Key; *catalogstore.Store satisfies it. LookupIdempotent
// returns the entry saved first under a key, and SaveIdempotent returns
// once that entry can no longer change, so that racing requests converge
// on one response. SaveIdempotent refuses bodies over maxSavedBody.
type Idempotency interface {
	SaveIdempotent(ctx context.Context, orgID, scope, key, requestHash string, status int, body []byte) error
	LookupIdempotent(ctx context.Context, orgID, scope, key string, since time.Time) (requestHash string, status int, body []byte, found bool, err error)
}

// IdempotencyWindow is how long a saved response answers retries.
const IdempotencyWindow = 24 * time.Hour

// idempotencyScope separates this endpoint's keys from other endpoints'
// (a client may reuse a key for another kind of request).
const idempotencyScope = "measure_usage"

// maxSavedBody bounds the response saved under an Idempotency-Key: 1 MiB,
// catalogstore.MaxIdempotentBody, the most the store keeps. A larger
// success (a long range with many groups) is answered but not saved, with
// the header Idempotent-Stored: false, and a retry computes it again: the
// endpoint only reads, so answering twice is safe, while saving it would
// let one request write megabytes that stay for months.
const maxSavedBody = 1 << 20

// maxIdempotencyKey bounds the header, as Stripe and Zuora do.
const maxIdempotencyKey = 255

// codeIdempotencyKeyReused is the error code of a key sent again with a
// different request.
const codeIdempotencyKeyReused = "idempotency_key_reused"

// requestHash identifies a request: the subscription it asks about and
// its body. The company's spelling (with or without cmp_) does not matter
// and the organization is not in it: saved responses are scoped by
// organization.
func requestHash(subscriptionID string, body []byte) string {
	h := sha256.New()
	h.Write([]byte("POST subscription usage\n" + subscriptionID + "\n"))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// idempotent answers a request with Idempotency-Key key: the saved
// response when the same request was answered within the window, 422 for
// another request under the key, and otherwise compute's response, saved
// when it is a success of at most maxSavedBody bytes. After saving, it
// answers with what the store serves for the key from then on, which is
// its own response unless a racing request saved first (the store's
// SaveIdempotent returns once that can no longer change).
func (h *handler) idempotent(ctx context.Context, orgID, key, hash string, compute func() response) response {
	since := h.now().Add(-IdempotencyWindow)
	if saved, found, err := h.lookup(ctx, orgID, key, hash, since); err != nil || found {
		if err != nil {
			return h.failure(ctx, "look up the Idempotency-Key", err)
		}
		return saved
	}
	resp := compute()
	if resp.status < 200 || resp.status > 299 {
		return resp // errors are not saved: a corrected request may reuse the key
	}
	if len(resp.body) > maxSavedBody {
		h.logger.Info("response not saved under its Idempotency-Key: too large; a retry computes it again",
			"org_id", orgID, "bytes", len(resp.body), "max_bytes", maxSavedBody)
		resp.notStored = true
		return resp
	}
	saveErr := h.idem.SaveIdempotent(ctx, orgID, idempotencyScope, key, hash, resp.status, resp.body)
	if saveErr != nil {
		// Saved too slowly for racers to agree, or not saved: either way
		// the store's entry, if any, is still the best answer.
		h.logger.Warn("save idempotent response", "org_id", orgID, "err", saveErr)
	}
	saved, found, err := h.lookup(ctx, orgID, key, hash, since)
	switch {
	case err != nil || !found:
		// The request only reads, so answering without saving is safe; a
		// retry computes the answer again.
		resp.notStored = saveErr != nil
		return resp
	case saved.status == resp.status && bytes.Equal(saved.body, resp.body):
		return resp // its own response: not a replay
	}
	return saved
}

// lookup returns the response saved under key: a replay when it answers
// the same request, 422 when it answers another.
func (h *handler) lookup(ctx context.Context, orgID, key, hash string, since time.Time) (response, bool, error) {
	savedHash, status, body, found, err := h.idem.LookupIdempotent(ctx, orgID, idempotencyScope, key, since)
	if err != nil || !found {
		return response{}, false, err
	}
	if savedHash != hash {
		return errorResponse(http.StatusUnprocessableEntity, codeIdempotencyKeyReused,
			"this Idempotency-Key was used with a different request in the last 24 hours; "+
				"send a new key for a new request, or the same request to get its response again", nil), true, nil
	}
	return response{status: status, body: body, replayed: true}, true, nil
}

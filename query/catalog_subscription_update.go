package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/schemas"
)

// subscriptionUpdate is the body of PUT /api/v1/subscriptions/{external_id}
// (Lago's {"subscription": {...}} wrapper too): what a running
// subscription may change. ending_at schedules its end, so that a plan
// change at the end of a period is one PUT and one POST; null clears it.
type subscriptionUpdate struct {
	Name     *string         `json:"name"`
	EndingAt json.RawMessage `json:"ending_at"`
}

// errSubscriptionEnded refuses changes to a terminated subscription.
var errSubscriptionEnded = errors.New("subscription ended")

// updateSubscription serves PUT /api/v1/subscriptions/{external_id}.
// ending_at must be after subscription_at and not in the past (DELETE
// ends a subscription now); a later end, or none, must not make the
// subscription share a meter with another of the customer's (see
// catalog_overlap.go). A terminated subscription does not change.
func (h *catalogHandler) updateSubscription(w http.ResponseWriter, r *http.Request) {
	body, ok := readCatalogBody(w, r, "subscription")
	if !ok {
		return
	}
	members, object, ok := bodyObject(body, "subscription")
	if !ok {
		writeInvalid(w, "the subscription", []*errorDetail{{Field: "subscription", Message: "must be a JSON object"}})
		return
	}
	var details []*errorDetail
	for name := range members {
		if name != "name" && name != "ending_at" && name != "external_id" {
			details = append(details, &errorDetail{Field: name, Message: "cannot be changed here; only name and ending_at can (DELETE ends a subscription now)"})
		}
	}
	var in subscriptionUpdate
	var inID struct {
		ExternalID *string `json:"external_id"`
	}
	if err := json.Unmarshal(object, &in); err != nil {
		details = append(details, &errorDetail{Field: "subscription", Message: "name must be a string and ending_at an RFC 3339 time or null"})
	}
	id := r.PathValue("external_id")
	if json.Unmarshal(object, &inID) == nil && inID.ExternalID != nil && *inID.ExternalID != id {
		details = append(details, &errorDetail{Field: "external_id", Message: "must be the id in the path, " + quoteKey(id)})
	}
	endingGiven := len(in.EndingAt) > 0
	var endingAt *time.Time
	if endingGiven && string(in.EndingAt) != "null" {
		var s string
		t, err := time.Time{}, json.Unmarshal(in.EndingAt, &s)
		if err == nil {
			t, err = time.Parse(time.RFC3339Nano, s)
		}
		if err != nil {
			details = append(details, &errorDetail{Field: "ending_at", Message: "must be an RFC 3339 time such as 2026-04-01T00:00:00Z, or null"})
		} else {
			t = t.UTC()
			endingAt = &t
		}
	}
	if in.Name != nil && utf8.RuneCountInString(*in.Name) > schemas.MaxCatalogNameLen {
		details = append(details, &errorDetail{Field: "name", Message: fmt.Sprintf("is longer than %d characters", schemas.MaxCatalogNameLen)})
	}
	if len(details) > 0 {
		writeInvalid(w, "the subscription", details)
		return
	}

	ctx, org, now := r.Context(), httpapi.OrgID(r.Context()), h.now()
	current, err := h.store.GetSubscription(ctx, org, id)
	switch {
	case isNotFound(err):
		writeCatalogNotFound(w, "subscription", id, SubscriptionsRoute)
		return
	case err != nil:
		h.storeFailed(w, r, "get subscription", err)
		return
	}
	if current.StatusAt(now) == schemas.StatusTerminated {
		writeInvalid(w, "the subscription", []*errorDetail{{Field: "external_id", Message: fmt.Sprintf(
			"subscription %s has ended; an ended subscription does not change (create a new one)", quoteKey(id))}})
		return
	}
	if endingGiven {
		if detail := checkEnd(current, endingAt, now); detail != nil {
			writeInvalid(w, "the subscription", []*errorDetail{detail})
			return
		}
		if extends(current, endingAt) {
			next := current
			next.EndingAt = endingAt
			plan, err := h.store.GetPlan(ctx, org, current.PlanCode)
			if err == nil {
				var clash *errorDetail
				if clash, err = h.meterClash(ctx, org, next, plan); clash != nil {
					clash.Field = "ending_at"
					writeInvalid(w, "the subscription", []*errorDetail{clash})
					return
				}
			}
			if err != nil && !isNotFound(err) {
				h.storeFailed(w, r, "check the customer's subscriptions", err)
				return
			}
		}
	}
	updated, err := h.store.UpdateSubscription(ctx, org, id, func(s *schemas.Subscription) error {
		if s.StatusAt(now) == schemas.StatusTerminated {
			return errSubscriptionEnded // terminated meanwhile
		}
		if in.Name != nil {
			s.Name = *in.Name
		}
		if endingGiven {
			s.EndingAt = endingAt
		}
		return nil
	})
	switch {
	case isNotFound(err):
		writeCatalogNotFound(w, "subscription", id, SubscriptionsRoute)
	case errors.Is(err, errSubscriptionEnded):
		writeInvalid(w, "the subscription", []*errorDetail{{Field: "external_id", Message: fmt.Sprintf(
			"subscription %s has ended; an ended subscription does not change (create a new one)", quoteKey(id))}})
	case err != nil:
		h.storeFailed(w, r, "update subscription", err)
	default:
		updated.Status = updated.StatusAt(now)
		httpapi.WriteJSON(w, http.StatusOK, updated)
	}
}

// checkEnd validates a new ending_at (nil: none) for a running sub at now.
func checkEnd(sub schemas.Subscription, endingAt *time.Time, now time.Time) *errorDetail {
	if endingAt == nil {
		return nil
	}
	if !endingAt.After(sub.SubscriptionAt) {
		return &errorDetail{Field: "ending_at", Message: fmt.Sprintf("%s is not after subscription_at %s",
			endingAt.Format(timeLayout), sub.SubscriptionAt.Format(timeLayout))}
	}
	if endingAt.Before(now) {
		return &errorDetail{Field: "ending_at", Message: fmt.Sprintf(
			"%s is in the past; DELETE %s/%s ends the subscription now", endingAt.Format(timeLayout), SubscriptionsRoute, sub.ExternalID)}
	}
	return nil
}

// extends reports whether ending at endingAt (nil: never) makes sub's
// life longer than it is.
func extends(sub schemas.Subscription, endingAt *time.Time) bool {
	end, ends := sub.EndAt()
	switch {
	case !ends:
		return false
	case endingAt == nil:
		return true
	}
	return endingAt.After(end)
}

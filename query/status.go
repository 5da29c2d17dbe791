package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/query/inspect"
	"github.com/tally-oss/tally/schemas"
)

// StatusRoute is the pipeline's health at a glance, for the caller's
// organization: whether ClickHouse answers, the events stored lately, the
// dead letters, the meters, and the readiness of each component (this
// query service and those of -query.status-components).
const StatusRoute = "/api/v1/status"

// statusHandler serves GET /api/v1/status.
type statusHandler struct {
	reader  *inspect.Reader
	meters  MeterStore
	timeout time.Duration
	logger  *slog.Logger
	now     func() time.Time
	// self is the query service's own readiness (its /readyz checks).
	self func(ctx context.Context) (bool, map[string]string, error)
	// probes are the other components'.
	probes *prober
}

// statusResponse is the body of a status request. When ClickHouse cannot
// answer, the figures it holds are null (never a 0 that looks like a quiet
// day) and the status is 503. A component that is not ready does not
// change the status code: the answer is still 200 (or 503 for ClickHouse
// alone), with that component's ready false, so that the console shows
// the whole picture and a monitor of this route alerts on ClickHouse only
// (each component's own /readyz is what its orchestrator watches).
type statusResponse struct {
	Organization string             `json:"organization"`
	CheckedAt    string             `json:"checked_at"`
	ClickHouse   clickHouseStatus   `json:"clickhouse"`
	Events       *eventsStatus      `json:"events"`
	DeadLetters  *deadLettersStatus `json:"dead_letters"`
	Meters       *int               `json:"meters"`
	Components   []componentStatus  `json:"components"`
}

type clickHouseStatus struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

type eventsStatus struct {
	LastHour         uint64  `json:"last_hour"`
	Last24h          uint64  `json:"last_24h"`
	LatestIngestedAt *string `json:"latest_ingested_at"` // null: no event stored yet
}

type deadLettersStatus struct {
	Last24h uint64 `json:"last_24h"`
}

func (h *statusHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	values, ok := queryValues(w, r)
	if !ok {
		return
	}
	if len(values) > 0 {
		name := slices.Sorted(maps.Keys(values))[0]
		details := []*errorDetail{{Field: name, Message: "unknown parameter; the status takes none"}}
		writeInvalidParams(w, details)
		return
	}
	org, now := httpapi.OrgID(ctx), h.now().UTC()
	body := statusResponse{Organization: org, CheckedAt: now.Format(time.RFC3339)}
	// The components are probed while ClickHouse counts, bounded by their
	// own timeouts, not by the counts' (a slow count is not a component
	// that does not answer).
	components := make(chan []componentStatus, 1)
	go func() { components <- h.components(r.Context()) }()
	counts, err := h.reader.Counts(ctx, org, now)
	var meters int
	if err == nil {
		var ms []schemas.Meter
		ms, err = h.meters.List(ctx, org)
		meters = len(ms)
		// A stored definition that no longer decodes is still a meter (its
		// events are dead-lettered as meter_invalid), not a failure of
		// ClickHouse.
		if invalid := (*meterstore.InvalidMetersError)(nil); errors.As(err, &invalid) {
			meters, err = meters+len(invalid.Meters), nil
		}
	}
	body.Components = <-components
	if err != nil {
		body.ClickHouse.Error = h.failure(r.WithContext(ctx), err)
		w.Header().Set("Retry-After", "1")
		httpapi.WriteJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	body.ClickHouse.OK = true
	body.Events = &eventsStatus{LastHour: counts.EventsLastHour, Last24h: counts.EventsLast24h}
	if !counts.LatestIngestedAt.IsZero() {
		at := utcTime(counts.LatestIngestedAt)
		body.Events.LatestIngestedAt = &at
	}
	body.DeadLetters = &deadLettersStatus{Last24h: counts.DeadLettersLast24h}
	body.Meters = &meters
	httpapi.WriteJSON(w, http.StatusOK, body)
}

// components returns the query service itself, then the probed
// components in their configured order.
func (h *statusHandler) components(ctx context.Context) []componentStatus {
	var self componentStatus
	var others []componentStatus
	var wg sync.WaitGroup
	wg.Go(func() { self = selfStatus(h.self(ctx)) })
	wg.Go(func() { others = h.probes.get(ctx) })
	wg.Wait()
	return append([]componentStatus{self}, others...)
}

// failure logs err once and returns what the caller is told: what
// happened, never ClickHouse's own text (it names servers and SQL).
func (h *statusHandler) failure(r *http.Request, err error) string {
	switch chclient.Classify(r.Context(), err) {
	case chclient.FailureCanceled:
		h.logger.Debug("read status: client gone")
		return "request canceled"
	case chclient.FailureTimeout:
		h.logger.Warn("read status: timed out", "err", err)
		return fmt.Sprintf("the counts took longer than the query timeout (%s): ClickHouse is slow, or this organization's "+
			"figures are large; the query component's clickhouse check says whether ClickHouse answers", h.timeout)
	case chclient.FailureUnavailable:
		h.logger.Error("read status failed", "err", err)
		return "ClickHouse is unavailable"
	default:
		h.logger.Error("read status failed", "err", err)
		return "reading the status from ClickHouse failed; the error is logged"
	}
}

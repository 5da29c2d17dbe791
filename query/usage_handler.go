package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/query/usage"
	"github.com/tally-oss/tally/schemas"
)

// usageHandler serves GET /api/v1/meters/{key}/query: the usage of one
// meter of the caller's organization over [from, to), by window and group.
//
// Windows are whole calendar windows of the requested zone (a DAY is local
// midnight to local midnight), so the first and last may reach beyond
// [from, to); only events inside [from, to) count. Windows without events
// are omitted. Without window_size there is one window, exactly [from, to).
type usageHandler struct {
	meters  *metersHandler
	usage   *usage.Service
	maxRows int
	timeout time.Duration
	logger  *slog.Logger
	now     func() time.Time
}

// codeOutOfRange is the error code of usage whose total Tally cannot
// represent exactly (usage.ErrOutOfRange): 422, as a retry gives the
// same answer.
const codeOutOfRange = "usage_out_of_range"

// usageResponse is the JSON body of a usage query.
type usageResponse struct {
	Meter          string            `json:"meter"`
	From           string            `json:"from"`
	To             string            `json:"to"`
	WindowSize     *usage.WindowSize `json:"window_size"` // null: one window over the whole range
	WindowTimeZone string            `json:"window_time_zone"`
	Data           []usageJSON       `json:"data"`
}

// usageJSON is one row of usageResponse. Value is a JSON number written
// from the exact decimal: it never passes through float64.
type usageJSON struct {
	WindowStart string            `json:"window_start"`
	WindowEnd   string            `json:"window_end"`
	CustomerID  *string           `json:"customer_id,omitempty"`
	GroupBy     map[string]string `json:"group_by"`
	Value       json.Number       `json:"value"`
}

func (h *usageHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	r = r.WithContext(ctx)

	values, ok := queryValues(w, r)
	if !ok {
		return
	}
	meter, ok := h.meters.lookup(w, r)
	if !ok {
		return
	}
	q, details := parseUsageParams(httpapi.OrgID(ctx), &meter, values, h.now())
	if len(details) > 0 {
		writeInvalidParams(w, details)
		return
	}
	rows, err := h.usage.Read(ctx, q)
	switch {
	case errors.Is(err, usage.ErrTooManyRows):
		httpapi.WriteError(w, http.StatusBadRequest, httpapi.CodeBadRequest, fmt.Sprintf(
			"the result has more than %d rows; use a larger window_size, a shorter range, fewer group_by keys or filters", h.maxRows))
		return
	case errors.Is(err, usage.ErrOutOfRange):
		httpapi.WriteError(w, http.StatusUnprocessableEntity, codeOutOfRange, fmt.Sprintf(
			"the usage of meter %s is out of range: %v; a smaller window_size or a shorter range keeps each window's total within it",
			quoteKey(meter.Key), usage.ErrOutOfRange))
		return
	case err != nil:
		writeStorageErrorAdvising(w, r, h.logger, "query usage", err,
			"retry, or narrow the query (shorter range, larger window_size, fewer group_by keys)")
		return
	}
	if wantsCSV(r) {
		writeCSV(w, q, rows)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, usageBody(meter, q, rows))
}

func usageBody(meter schemas.Meter, q usage.Query, rows []usage.Row) usageResponse {
	body := usageResponse{
		Meter:          meter.Key,
		From:           formatTime(q.From, q.Location),
		To:             formatTime(q.To, q.Location),
		WindowTimeZone: q.Location.String(),
		Data:           make([]usageJSON, 0, len(rows)),
	}
	if q.WindowSize != usage.WindowNone {
		body.WindowSize = &q.WindowSize
	}
	for _, row := range rows {
		item := usageJSON{
			WindowStart: formatTime(row.WindowStart, q.Location),
			WindowEnd:   formatTime(row.WindowEnd, q.Location),
			GroupBy:     make(map[string]string, len(q.GroupBy)),
			Value:       json.Number(row.Value.String()),
		}
		for i, key := range q.GroupBy {
			item.GroupBy[key] = row.GroupValues[i]
			if key == schemas.CustomerGroupKey {
				item.CustomerID = &row.GroupValues[i]
			}
		}
		body.Data = append(body.Data, item)
	}
	return body
}

// formatTime writes t in RFC 3339 with the offset of loc at that instant,
// so a window in New York reads -05:00 in winter and -04:00 in summer.
// Fractional seconds appear only when there are any.
func formatTime(t time.Time, loc *time.Location) string {
	return t.In(loc).Format(time.RFC3339Nano)
}

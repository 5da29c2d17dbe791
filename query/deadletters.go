package query

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/query/inspect"
	"github.com/tally-oss/tally/schemas"
)

// DeadLettersRoute lists the caller's dead letters: events accepted but
// not metered, with the reason and the record.
const DeadLettersRoute = "/api/v1/dead_letters"

// Defaults of the dead-letters route.
const (
	defaultDeadLetterLimit = 100
	defaultDeadLetterSince = 7 * 24 * time.Hour
)

var deadLetterParams = []string{"reason", "customer_id", "limit", "since"}

// deadLettersHandler serves GET /api/v1/dead_letters.
type deadLettersHandler struct {
	reader  *inspect.Reader
	timeout time.Duration
	logger  *slog.Logger
	now     func() time.Time
}

type deadLettersResponse struct {
	Data     []deadLetterJSON  `json:"data"`
	ByReason []reasonCountJSON `json:"by_reason"`
	Total    uint64            `json:"total"`
}

type deadLetterJSON struct {
	CustomerID     string `json:"customer_id"`
	EventID        string `json:"event_id"`
	EventType      string `json:"event_type"`
	MeterKey       string `json:"meter_key"`
	Reason         string `json:"reason"`
	Message        string `json:"message"`
	Event          any    `json:"event"` // the record: a JSON object when it is one, else its text
	Time           string `json:"time"`
	IngestedAt     string `json:"ingested_at"`
	DeadLetteredAt string `json:"dead_lettered_at"`
}

type reasonCountJSON struct {
	Reason string `json:"reason"`
	Count  uint64 `json:"count"`
}

func (h *deadLettersHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	r = r.WithContext(ctx)
	values, ok := queryValues(w, r)
	if !ok {
		return
	}
	q, details := parseDeadLetterParams(httpapi.OrgID(ctx), values, h.now())
	if len(details) > 0 {
		writeInvalidParams(w, details)
		return
	}
	page, err := h.reader.DeadLetters(ctx, q)
	if err != nil {
		writeStorageError(w, r, h.logger, "read dead letters", err)
		return
	}
	body := deadLettersResponse{Data: make([]deadLetterJSON, 0, len(page.Latest)), ByReason: make([]reasonCountJSON, 0, len(page.ByReason)), Total: page.Total}
	for _, d := range page.Latest {
		body.Data = append(body.Data, deadLetterJSON{
			CustomerID: d.CustomerID, EventID: d.EventID, EventType: d.EventType, MeterKey: d.MeterKey,
			Reason: d.Reason, Message: d.Message, Event: recordJSON(d.Record, d.RecordCut),
			Time: utcTime(d.Time), IngestedAt: utcTime(d.IngestedAt), DeadLetteredAt: utcTime(d.DeadLetteredAt),
		})
	}
	for _, c := range page.ByReason {
		body.ByReason = append(body.ByReason, reasonCountJSON(c))
	}
	httpapi.WriteJSON(w, http.StatusOK, body)
}

// recordJSON is a dead letter's record as the response carries it: the
// JSON object itself when it is one (an event record always is), and
// otherwise its text (an unreadable record, one cut to its first bytes,
// or "" when another dead letter of the record carries it).
func recordJSON(record string, cut bool) any {
	trimmed := strings.TrimSpace(record)
	if !cut && strings.HasPrefix(trimmed, "{") && json.Valid([]byte(trimmed)) {
		return json.RawMessage(trimmed)
	}
	return record
}

func utcTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// parseDeadLetterParams validates the query string of a dead-letters
// request and returns every problem, each naming its parameter. Unknown
// and repeated parameters are errors, as for usage: a misspelt filter
// silently ignored would list dead letters that look filtered and are not.
func parseDeadLetterParams(orgID string, values url.Values, now time.Time) (inspect.DeadLetterQuery, []*errorDetail) {
	q := inspect.DeadLetterQuery{OrgID: orgID, Limit: defaultDeadLetterLimit, Since: now.Add(-defaultDeadLetterSince)}
	var errs []*errorDetail
	fail := func(param, format string, args ...any) {
		errs = append(errs, &errorDetail{Field: param, Message: fmt.Sprintf(format, args...)})
	}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		switch vals := values[name]; {
		case !slices.Contains(deadLetterParams, name):
			fail(name, "unknown parameter; use %s", strings.Join(deadLetterParams, ", "))
		case len(vals) > 1:
			fail(name, "is given %d times; give it once", len(vals))
		}
	}
	if v, ok := values["reason"]; ok && len(v) == 1 {
		if !slices.Contains(inspect.Reasons, v[0]) {
			fail("reason", "%q is not a dead-letter reason; use one of %s", schemas.QuoteValue(v[0]), strings.Join(inspect.Reasons, ", "))
		}
		q.Reason = v[0]
	}
	if v, ok := values["customer_id"]; ok && len(v) == 1 {
		if v[0] == "" || utf8.RuneCountInString(v[0]) > schemas.MaxCustomerIDLen {
			fail("customer_id", "must be 1 to %d characters", schemas.MaxCustomerIDLen)
		}
		q.CustomerID = v[0]
	}
	if v, ok := values["limit"]; ok && len(v) == 1 {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > inspect.MaxLimit {
			fail("limit", "%q must be a whole number from 1 to %d (default %d)", schemas.QuoteValue(v[0]), inspect.MaxLimit, defaultDeadLetterLimit)
		}
		q.Limit = n
	}
	if v, ok := values["since"]; ok && len(v) == 1 {
		t, err := parseTime(v[0])
		if err != nil {
			fail("since", "%v; it defaults to 7 days ago", err)
		}
		q.Since = t
	}
	return q, errs
}

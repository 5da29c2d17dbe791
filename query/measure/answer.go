package measure

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/query/billing"
	"github.com/tally-oss/tally/query/usage"
	"github.com/tally-oss/tally/schemas"
)

// answer computes the response to a request body for subscription subID
// of orgID.
func (h *handler) answer(ctx context.Context, orgID, subID string, raw []byte) response {
	req, problems := parseRequest(raw)
	if len(problems) > 0 {
		messages := make([]string, len(problems))
		for i, p := range problems {
			messages[i] = p.Error()
		}
		return errorResponse(http.StatusBadRequest, httpapi.CodeValidation, strings.Join(messages, "; "), problems)
	}
	sub, err := h.billing.Load(ctx, orgID, subID)
	switch {
	case errors.Is(err, billing.ErrSubscriptionNotFound):
		return notFound(subID)
	case errors.Is(err, billing.ErrPlanNotFound):
		return errorResponse(http.StatusNotFound, httpapi.CodeNotFound,
			fmt.Sprintf("the plan of subscription %s no longer exists", strconv.Quote(subID)), nil)
	case err != nil:
		return h.failure(ctx, "load the subscription", err)
	}
	charge, ok := chargeByID(sub.Plan.Charges, req.ChargeID)
	if !ok {
		return errorResponse(http.StatusNotFound, httpapi.CodeNotFound, fmt.Sprintf(
			"product_metric_pricing_id %s is not a charge of plan %s of subscription %s",
			strconv.Quote(req.ChargeID), strconv.Quote(sub.Plan.Code), strconv.Quote(subID)), nil)
	}
	m, found := sub.Meters[charge.Meter]
	met, err := metricOf(orgID, charge.Meter, m, found)
	if err != nil {
		return h.internal(err)
	}
	pricing, err := pricingOf(orgID, sub, charge, met)
	if err != nil {
		return h.internal(err)
	}
	periods, err := usageOf(ctx, h.usage, orgID, sub, charge, chargeMeter{m, found}, span{req.From, req.To}, h.maxRows)
	if err != nil {
		return h.failure(ctx, "read usage", err)
	}
	return render(http.StatusOK, usageResponse{Metric: met, ProductMetricPricing: pricing, Usage: periods})
}

func chargeByID(charges []schemas.Charge, id string) (schemas.Charge, bool) {
	for _, c := range charges {
		if c.ID == id {
			return c, true
		}
	}
	return schemas.Charge{}, false
}

// internal answers a catalog object this API cannot describe (a bug or
// a stored object no validation would accept) and logs it, once, here.
func (h *handler) internal(err error) response {
	h.logger.Error("describe subscription usage", "err", err)
	return errorResponse(http.StatusInternalServerError, httpapi.CodeInternal, "the subscription's charge could not be described; the error is logged", nil)
}

// codeOutOfRange is the error code of usage whose total Tally cannot
// represent exactly (usage.ErrOutOfRange).
const codeOutOfRange = "usage_out_of_range"

// failure answers a failed read and logs it, once, here. A result over the
// row limit (of one read, or of the whole response) is the client's to
// narrow (400 naming period); a total out of the range Tally represents
// exactly is 422, which no retry changes; storage unreachable, busy or slower than the
// timeout is 503 (retry later); an exception about the query itself is a
// bug of ours (500).
func (h *handler) failure(ctx context.Context, action string, err error) response {
	if errors.Is(err, usage.ErrTooManyRows) || errors.Is(err, errTooManyRows) {
		problem := fieldError{"period", fmt.Sprintf("the daily breakdown of this range (a row per day and group) "+
			"has more than the server's limit of %d rows; ask for a shorter range", h.maxRows)}
		return errorResponse(http.StatusBadRequest, httpapi.CodeValidation, problem.Error(), []fieldError{problem})
	}
	if errors.Is(err, usage.ErrOutOfRange) {
		var rangeErr *usage.OutOfRangeError
		message := usage.ErrOutOfRange.Error()
		if errors.As(err, &rangeErr) {
			message = rangeErr.Error() // names the meter
		}
		return errorResponse(http.StatusUnprocessableEntity, codeOutOfRange, message, nil)
	}
	switch chclient.Classify(ctx, err) {
	case chclient.FailureCanceled:
		h.logger.Debug(action + ": client gone")
		return errorResponse(http.StatusServiceUnavailable, httpapi.CodeUnavailable, "request canceled", nil)
	case chclient.FailureTimeout:
		h.logger.Warn(action+": timed out", "err", err)
		return errorResponse(http.StatusServiceUnavailable, httpapi.CodeUnavailable,
			"ClickHouse did not answer in time; retry, or ask for a shorter period", nil)
	case chclient.FailureUnavailable:
		h.logger.Error(action+" failed", "err", err)
		return errorResponse(http.StatusServiceUnavailable, httpapi.CodeUnavailable, action+": ClickHouse is unavailable; retry later", nil)
	}
	h.logger.Error(action+" failed", "err", err)
	return errorResponse(http.StatusInternalServerError, httpapi.CodeInternal, action+" failed; the error is logged", nil)
}

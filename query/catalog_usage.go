package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/query/billing"
	"github.com/tally-oss/tally/query/rating"
	"github.com/tally-oss/tally/query/usage"
	"github.com/tally-oss/tally/schemas"
)

// subscriptionUsage serves GET /api/v1/subscriptions/{external_id}/usage:
// the subscription's usage with amounts over its current billing period
// (the default), the previous one (?period=previous), or [from, to). Each
// charge's amount is exact and rounded once to the currency's minor unit;
// totals add the rounded amounts. Every amount is given twice: as a
// decimal string in major units ("12.30") and as an integer in minor units
// (1230). The groups of a SUM or COUNT charge share its amount; those of
// any other charge have units and no amount (group_amounts: false).
func (h *catalogHandler) subscriptionUsage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("external_id")
	params, details := queryParams(r, "period", "from", "to")
	req, reqDetails := parsePeriodRequest(params)
	if details = append(details, reqDetails...); len(details) > 0 {
		writeInvalid(w, "the query", details)
		return
	}
	u, err := h.billing.SubscriptionUsage(r.Context(), httpapi.OrgID(r.Context()), id, req)
	switch {
	case errors.Is(err, billing.ErrSubscriptionNotFound):
		writeCatalogNotFound(w, "subscription", id, SubscriptionsRoute)
	case errors.Is(err, billing.ErrPlanNotFound):
		httpapi.WriteError(w, http.StatusConflict, httpapi.CodeConflict, fmt.Sprintf(
			"the plan of subscription %s was deleted, so its usage cannot be priced", quoteKey(id)))
	case errors.Is(err, billing.ErrPeriod):
		field := "period"
		if !req.From.IsZero() {
			field = "from"
		}
		writeInvalid(w, "the query", []*errorDetail{{Field: field, Message: err.Error()}})
	case errors.Is(err, usage.ErrOutOfRange):
		httpapi.WriteError(w, http.StatusUnprocessableEntity, codeOutOfRange, fmt.Sprintf(
			"subscription %s cannot be priced: %v", quoteKey(id), outOfRange(err)))
	case errors.Is(err, rating.ErrOverflow):
		// Exact units whose price exceeds what an amount in minor units
		// (int64) holds: the data, not a bug, and no retry changes it.
		httpapi.WriteError(w, http.StatusUnprocessableEntity, codeOutOfRange, fmt.Sprintf(
			"subscription %s cannot be priced: an amount exceeds the range of amounts in minor units (%v)", quoteKey(id), err))
	case isRatingError(err):
		h.logger.Error("price subscription usage", "path", r.URL.Path, "err", err)
		httpapi.WriteError(w, http.StatusInternalServerError, httpapi.CodeInternal,
			"pricing the usage of subscription "+quoteKey(id)+" failed; the error is logged")
	case err != nil:
		h.storeFailed(w, r, "read subscription usage", err)
	default:
		httpapi.WriteJSON(w, http.StatusOK, usageWithAmounts(u))
	}
}

// parsePeriodRequest reads ?period=current|previous, or ?from= and ?to=
// (RFC 3339; both, and not with period).
func parsePeriodRequest(params map[string]string) (billing.PeriodRequest, []*errorDetail) {
	var req billing.PeriodRequest
	var details []*errorDetail
	period, hasPeriod := params["period"]
	if hasPeriod {
		switch w := billing.Which(period); w {
		case billing.Current, billing.Previous:
			req.Which = w
		default:
			details = append(details, &errorDetail{Field: "period", Message: fmt.Sprintf(
				"%q must be current or previous; or give from and to instead", period)})
		}
	}
	from, hasFrom := params["from"]
	to, hasTo := params["to"]
	switch {
	case (hasFrom || hasTo) && hasPeriod:
		return req, append(details, &errorDetail{Field: "period", Message: "give period, or from and to, not both"})
	case hasFrom && !hasTo:
		return req, append(details, &errorDetail{Field: "to", Message: "is required with from"})
	case hasTo && !hasFrom:
		return req, append(details, &errorDetail{Field: "from", Message: "is required with to"})
	case !hasFrom:
		return req, details
	}
	var err error
	if req.From, err = parseTime(from); err != nil {
		details = append(details, &errorDetail{Field: "from", Message: err.Error()})
	}
	if req.To, err = parseTime(to); err != nil {
		details = append(details, &errorDetail{Field: "to", Message: err.Error()})
	}
	if len(details) == 0 && !req.From.Before(req.To) {
		details = append(details, &errorDetail{Field: "from", Message: fmt.Sprintf(
			"%s must be before to (%s); the range is half-open [from, to)", from, to)})
	}
	return req, details
}

// outOfRange is the *usage.OutOfRangeError in err, which names the meter.
func outOfRange(err error) error {
	var rangeErr *usage.OutOfRangeError
	if errors.As(err, &rangeErr) {
		return rangeErr
	}
	return usage.ErrOutOfRange
}

// isRatingError reports a plan the pricing code cannot price: a bug or a
// stored plan that no longer validates, never the client's request.
func isRatingError(err error) bool {
	for _, target := range []error{rating.ErrUnknownChargeModel, rating.ErrInvalidCharge, rating.ErrUnknownCurrency,
		rating.ErrInvalidPlan, rating.ErrUnknownCharge, rating.ErrInvalidSchedule} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// subscriptionUsageBody is the response of the usage route.
type subscriptionUsageBody struct {
	Subscription            usageSubscription `json:"subscription"`
	Currency                string            `json:"currency"`
	From                    string            `json:"from"`
	To                      string            `json:"to"`
	Charges                 []chargeUsageLine `json:"charges"`
	FixedFee                proratedMoneyJSON `json:"fixed_fee"`
	MinimumCommitment       proratedMoneyJSON `json:"minimum_commitment"`
	MinimumCommitmentTrueUp moneyJSON         `json:"minimum_commitment_true_up"`
	ChargesTotal            moneyJSON         `json:"charges_total"`
	Total                   moneyJSON         `json:"total"`
	// Proration is present when the fixed fee or the minimum is prorated.
	Proration *prorationJSON `json:"proration,omitempty"`
}

// proratedMoneyJSON is the fixed fee or the minimum commitment. In a
// partial billing period it is a share of the plan's amount: prorated is
// true and full_amount is the whole period's. In a whole period it is
// just the amount, as before proration existed.
type proratedMoneyJSON struct {
	moneyJSON
	Prorated        bool   `json:"prorated,omitempty"`
	FullAmount      string `json:"full_amount,omitempty"`
	FullAmountCents *int64 `json:"full_amount_cents,omitempty"`
}

// prorationJSON says what a partial period is a share of: the whole
// billing period and its days, the days the subscription is live in the
// billed period (for the minimum, and a fee paid in arrears) and the days
// the fixed fee is owed for (to the whole period's end when paid in
// advance).
type prorationJSON struct {
	FullPeriodFrom string `json:"full_period_from"`
	FullPeriodTo   string `json:"full_period_to"`
	FullPeriodDays int    `json:"full_period_days"`
	Days           int    `json:"days"`
	FixedFeeDays   int    `json:"fixed_fee_days"`
}

type usageSubscription struct {
	ExternalID         string                     `json:"external_id"`
	ExternalCustomerID string                     `json:"external_customer_id"`
	PlanCode           string                     `json:"plan_code"`
	Status             schemas.SubscriptionStatus `json:"status"`
}

// moneyJSON is an amount in major units, with the currency's decimals
// ("12.30"), and in minor units (1230).
type moneyJSON struct {
	Amount      string `json:"amount"`
	AmountCents int64  `json:"amount_cents"`
}

// chargeUsageLine is one charge. Units are a JSON number written from the
// exact decimal, as in usage queries.
type chargeUsageLine struct {
	ChargeID           string              `json:"charge_id"`
	Meter              string              `json:"meter"`
	ChargeModel        schemas.ChargeModel `json:"charge_model"`
	InvoiceDisplayName string              `json:"invoice_display_name"`
	Units              json.Number         `json:"units"`
	EventsCount        uint64              `json:"events_count"`
	moneyJSON
	Groups []groupUsageLine `json:"groups"`
	// GroupsOmitted is true when the meter has more groups than a
	// response may hold (-query.max-rows): the charge is whole, its lines
	// per group are left out.
	GroupsOmitted bool `json:"groups_omitted,omitempty"`
	// GroupAmounts says the groups have amounts, their shares of the
	// charge's, which add up to it: the meter is a SUM or COUNT. A MAX,
	// MIN, LATEST, AVG or UNIQUE_COUNT charge is not the sum of its
	// groups: they have units and events, and no amount.
	GroupAmounts bool `json:"group_amounts"`
}

// groupUsageLine is one group of a charge: its amount and amount_cents
// are there only when the charge line has group_amounts.
type groupUsageLine struct {
	GroupBy     map[string]string `json:"group_by"`
	Units       json.Number       `json:"units"`
	EventsCount uint64            `json:"events_count"`
	*moneyJSON                    // nil: the charge is not split over its groups
}

func usageWithAmounts(u billing.Usage) subscriptionUsageBody {
	inv, sub := u.Invoice, u.Subscription.Subscription
	exponent, _ := schemas.CurrencyExponent(inv.Currency) // known: Rate priced in it
	money := func(m rating.Money) moneyJSON {
		return moneyJSON{Amount: m.Amount.StringFixed(exponent), AmountCents: m.Minor}
	}
	prorated := func(m, full rating.Money, isProrated bool) proratedMoneyJSON {
		out := proratedMoneyJSON{moneyJSON: money(m)}
		if isProrated {
			whole := money(full)
			out.Prorated, out.FullAmount, out.FullAmountCents = true, whole.Amount, &whole.AmountCents
		}
		return out
	}
	body := subscriptionUsageBody{
		Subscription: usageSubscription{ExternalID: sub.ExternalID, ExternalCustomerID: sub.ExternalCustomerID,
			PlanCode: sub.PlanCode, Status: sub.Status},
		Currency:                inv.Currency,
		From:                    formatTime(inv.Period.From, u.Location),
		To:                      formatTime(inv.Period.To, u.Location),
		Charges:                 make([]chargeUsageLine, 0, len(inv.Charges)),
		FixedFee:                prorated(inv.FixedFee, inv.FullFixedFee, inv.FixedFeeProrated),
		MinimumCommitment:       prorated(inv.MinimumCommitment, inv.FullMinimumCommitment, inv.MinimumCommitmentProrated),
		MinimumCommitmentTrueUp: money(inv.TrueUp),
		ChargesTotal:            money(inv.ChargesTotal),
		Total:                   money(inv.Total),
	}
	if p := inv.Proration; inv.FixedFeeProrated || inv.MinimumCommitmentProrated {
		body.Proration = &prorationJSON{FullPeriodFrom: formatTime(p.Full.From, u.Location), FullPeriodTo: formatTime(p.Full.To, u.Location),
			FullPeriodDays: p.FullDays, Days: p.Days, FixedFeeDays: p.FeeDays(u.Plan.PayInAdvance)}
	}
	for _, line := range inv.Charges {
		name := line.Charge.InvoiceDisplayName
		if name == "" {
			// As Lago falls back to the billable metric's name.
			name = u.Meters[line.Charge.Meter].Name
		}
		if name == "" {
			name = line.Charge.Meter
		}
		out := chargeUsageLine{
			ChargeID: line.Charge.ID, Meter: line.Charge.Meter, ChargeModel: line.Charge.ChargeModel,
			InvoiceDisplayName: name, Units: json.Number(line.Units.String()), EventsCount: line.Events,
			moneyJSON: money(line.Amount), Groups: make([]groupUsageLine, 0, len(line.Groups)),
			GroupsOmitted: line.GroupsOmitted, GroupAmounts: line.GroupAmounts,
		}
		for _, g := range line.Groups {
			group := groupUsageLine{GroupBy: g.Values, Units: json.Number(g.Units.String()), EventsCount: g.Events}
			if line.GroupAmounts {
				amount := money(g.Amount)
				group.moneyJSON = &amount
			}
			out.Groups = append(out.Groups, group)
		}
		body.Charges = append(body.Charges, out)
	}
	return body
}

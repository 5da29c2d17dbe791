// Package measure serves Measure's "Get Subscription Usage" API on
// Tally's catalog and usage, so that a Measure integration can point at
// Tally's base URL and keep working:
//
//	POST /api/v1/companies/{company_id}/subscriptions/{id}/usage
//	{"product_metric_pricing_id": "<charge id>", "period": {"start_date": "...", "end_date": "..."}}
//
// Measure's objects map onto Tally's as follows. A company is an
// organization: company_id is the organization id, with or without
// Measure's "cmp_" prefix, and responses name it "cmp_" + org. {id} is the
// subscription's external_id. A product is a plan (product_id is the plan
// code), a product metric pricing is one of its charges (its id is the
// charge id), and the charge's metric and billable item are the meter it
// charges (their id is the meter key). The answer holds the metric, the
// pricing and, per billing period overlapping the requested range, the
// meter's usage for the subscription's customer over that period clipped
// to the range, broken down per day in the subscription's time zone and
// per group of the meter's group_by keys. Values are the exact decimals a
// usage query returns, as JSON numbers.
//
// Decisions where Measure's document is silent:
//   - Prices (price_per_unit, flat_price, price_per_step) are JSON numbers
//     in major units of the plan's currency, exactly as the charge holds
//     them ("0.05" is five cents); amounts named value_in_cents (base_price
//     is the plan's fixed fee, minimum_spend its minimum commitment) are
//     integers in the currency's minor unit, as the plan holds them.
//   - metric.metering_rule mirrors the meter: aggregator is the
//     aggregation's Measure name (schemas' aggregation table), group_keys
//     its group_by keys sorted ([] when none), property its value_property
//     as the meter holds it ("$.tokens"; "" for COUNT), rule its filter as
//     JSON text ("" when none).
//   - Times are RFC 3339 in UTC; a period's start_date and end_date bound
//     it half-open, [start_date, end_date).
//   - subscription_metric_record_id is "<subscription>:<charge>:<start of
//     the billing period, Unix seconds>": the same for every request that
//     touches that period.
//   - Charge models: standard -> fixed_price, graduated -> gradient_price,
//     volume -> volume_price, package -> step_price with base_units the
//     package's free units. The price shapes a charge does not use are null.
//   - Enumerations are upper case: frequency is WEEK, MONTH, QUARTER or
//     YEAR (the plan's interval); metric, item and item pricing type is
//     USAGE; charge_type is POST_PAYMENT (usage is billed in arrears);
//     state is ACTIVE.
//   - Fields Tally has no notion of (the company's address, entitlements,
//     credit, custom and scheduled prices, schedules, tags) are present
//     with null or empty values, so a client that reads every field works.
//   - Another organization's company_id is 404 with the same body as an
//     unknown subscription: it tells nothing about the other organization.
//   - The requested range is at most MaxRangeDays long; end_date before
//     start_date is 400, and equal dates (as in Measure's own example) are
//     an empty range with no usage.
//   - One response holds at most Deps.MaxRows (query.max-rows) breakdown
//     rows over all its periods together, not per period; a range whose
//     daily breakdown has more is 400 naming period and asking for a
//     shorter range.
//   - Idempotency-Key: the first 2xx response to a request is saved for
//     IdempotencyWindow under the key, scoped to the organization and this
//     endpoint; a retry with the same key and the same request (the
//     subscription and the body; cmp_acme and acme are one company) gets
//     the saved status and bytes, even if more usage
//     arrived since; the same key with another request is 422
//     idempotency_key_reused. Errors are not saved, so a corrected request
//     can reuse the key, and neither is a response over 1 MiB
//     (maxSavedBody): it is answered with Idempotent-Stored: false and a
//     retry computes it again. Racing requests may each compute and save,
//     and converge on the response saved first by ClickHouse's clock, not
//     the API processes' (catalogstore's idempotency_clock.go: the first
//     save of a key waits up to about 1.25 s for that, and the window
//     that remains is documented there). A fresh answer carries no
//     Idempotent-Replayed header; one saved by another request does.
//     Without an idempotency store (Deps.Idempotency nil) the header is
//     ignored: the endpoint only reads.
package measure

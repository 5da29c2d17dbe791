// Package rating turns metered usage into money: it is the pricing step at
// the end of the pipeline, after query has read a customer's usage per
// meter (and per group) from ClickHouse for one billing period.
//
// It answers three questions, each in its own file, with no I/O:
//
//   - Which billing period holds an instant (periods.go, schedule.go):
//     calendar or anniversary periods of a subscription, in its time zone,
//     with real DST-aware boundaries.
//   - What a charge costs for a quantity of units (charges.go): the
//     standard, graduated, volume and package models, computed exactly.
//   - What the invoice says (rate.go, money.go, allocate.go): every charge
//     rounded once to the currency's minor unit, the fixed fee, the minimum
//     commitment and its true-up, and each charge of an additive meter
//     (SUM, COUNT) split over its groups so that the group amounts add up
//     to the charge to the minor unit.
//   - How much of the fixed fee and the minimum a partial period owes
//     (proration.go): days of the period over days of the whole period it
//     is part of, counted in the subscription's zone, as Lago does.
//
// Amounts are shopspring decimals until the single rounding per charge;
// after it, every amount is also kept as an int64 count of minor units
// (cents, yen, fils), and totals are sums of those integers, so an
// invoice's lines always add up to its total.
package rating

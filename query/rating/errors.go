package rating

import "errors"

// Errors callers branch on. Each is wrapped with the charge, range or
// currency it is about.
var (
	// ErrUnknownChargeModel: a charge model this package has no rule for.
	// Never priced as another model.
	ErrUnknownChargeModel = errors.New("unknown charge model")
	// ErrInvalidCharge: a charge's properties do not fit its model (a
	// missing amount, a non-positive package size, tiers that do not
	// follow each other).
	ErrInvalidCharge = errors.New("invalid charge properties")
	// ErrUnknownCurrency: a currency without a known minor-unit exponent.
	ErrUnknownCurrency = errors.New("unknown currency")
	// ErrOverflow: an amount in minor units that does not fit an int64.
	ErrOverflow = errors.New("amount overflows int64 minor units")
	// ErrInvalidPlan: a plan Rate cannot price (a negative fee, two
	// charges with one id).
	ErrInvalidPlan = errors.New("invalid plan")
	// ErrUnknownCharge: usage for a charge id that is not in the plan.
	ErrUnknownCharge = errors.New("usage for a charge not in the plan")
	// ErrInvalidSchedule: a billing interval, billing time or location
	// that periods cannot be computed for.
	ErrInvalidSchedule = errors.New("invalid billing schedule")
)

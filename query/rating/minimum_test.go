package rating_test

import (
	"testing"

	"github.com/tally-oss/tally/query/rating"
	"github.com/tally-oss/tally/schemas"
)

// Lago's minimum commitment applies to the invoice total including
// the subscription fee (docs.getlago.com/guide/plans/commitment; Lago's own
// example: $50 fee + 3 x $10 usage + $20 true-up = $100).
func TestMinimumCommitmentIncludesFee(t *testing.T) {
	plan := schemas.Plan{Code: "p", Interval: schemas.IntervalMonthly, AmountCents: 5000, AmountCurrency: "USD",
		MinimumCommitmentCents: 10000, Charges: []schemas.Charge{withID("u", standard("10"))}}
	inv, err := rating.Rate(plan, rating.Period{}, rating.Proration{}, []rating.ChargeUsage{used("u", "3")})
	if err != nil {
		t.Fatal(err)
	}
	if inv.TrueUp.Minor != 2000 || inv.Total.Minor != 10000 {
		t.Errorf("fee 50 + usage 30, minimum 100: true-up %d total %d, want 2000 and 10000 (Lago)", inv.TrueUp.Minor, inv.Total.Minor)
	}
}

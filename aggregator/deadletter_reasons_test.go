package aggregator

import (
	"slices"
	"testing"

	"github.com/tally-oss/tally/query/inspect"
)

// TestEveryDeadLetterReasonCanBeFiltered: GET /api/v1/dead_letters counts
// dead letters by reason and takes ?reason= to list one of them (the
// console's reason buttons do just that). A reason the aggregator stores
// that the route refuses as "not a dead-letter reason" is listed in
// by_reason but cannot be looked at.
func TestEveryDeadLetterReasonCanBeFiltered(t *testing.T) {
	for _, r := range deadLetterReasons {
		if !slices.Contains(inspect.Reasons, r) {
			t.Errorf("the aggregator stores dead letters with reason %q, which the dead-letters route refuses as a filter (inspect.Reasons %v)", r, inspect.Reasons)
		}
	}
}

package client

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// review9a: a Retry-After longer than what is left of MaxElapsed (a proxy's
// "Retry-After: 3600", or a value so large it overflows time.Duration) must
// not make Send sleep past its retry budget: `tally send -retry-for 2m`
// hung for an hour. Send gives up with the answer's error instead.
func TestSendRetryAfterBeyondBudgetGivesUp(t *testing.T) {
	for _, ra := range []string{"3600", "99999999999", "9223372036854775807"} {
		t.Run(ra, func(t *testing.T) {
			stub := &ingestStub{statuses: []int{http.StatusTooManyRequests, http.StatusTooManyRequests}, header: http.Header{"Retry-After": {ra}}}
			p := fastPolicy()
			p.MaxAttempts = 0
			p.MaxElapsed = 2 * time.Second
			c, waits := testClient(t, stub, p)
			_, err := c.Send(context.Background(), Event{ID: "e1", Type: "t", CustomerID: "c"})
			for _, w := range *waits {
				if w > p.MaxElapsed || w < 0 {
					t.Errorf("Retry-After %s: waited %s, beyond MaxElapsed %s", ra, w, p.MaxElapsed)
				}
			}
			if err == nil {
				t.Errorf("Retry-After %s: no error; want the 429 once waiting would pass MaxElapsed", ra)
			}
		})
	}
}

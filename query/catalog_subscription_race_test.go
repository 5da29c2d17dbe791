package query

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tally-oss/tally/schemas"
)

// TestSubscriptionPutRacesDelete: a DELETE that answered 200 "terminated"
// stays terminated whatever PUT ran beside it. The PUT reads the
// subscription and writes a changed copy; a termination made between the
// two used to be overwritten by that copy (terminated_at null, billing on).
// Many tries (the old store lost about 19 of 20), each PUT and DELETE
// started together: after both answered, GET and the list show the
// DELETE's termination time, and the PUT's rename took effect exactly when
// it answered 200 (a 400 means it read the termination).
func TestSubscriptionPutRacesDelete(t *testing.T) {
	c := newCatalogEnv(t)
	c.catalogMeters(keyAcme)
	c.createPlan(keyAcme, basicPlan)
	c.createCustomer(keyAcme, `{"external_id": "c1"}`)
	const n = 50
	subscribed := time.Now().Add(-time.Hour)
	for i := range n {
		// Through the store: the API refuses a customer's subscriptions
		// that share meters, and the race does not need n customers.
		if _, err := c.store.CreateSubscription(context.Background(), "acme", schemas.Subscription{ExternalID: fmt.Sprintf("s%03d", i),
			ExternalCustomerID: "c1", PlanCode: "basic", SubscriptionAt: subscribed, BillingTime: schemas.BillingCalendar, Timezone: "UTC"}); err != nil {
			t.Fatal(err)
		}
	}
	lost, putAnswers := 0, map[int]int{}
	var ids []string
	for i := range n {
		id := fmt.Sprintf("s%03d", i)
		ids = append(ids, id)
		path := SubscriptionsRoute + "/" + id
		var wg sync.WaitGroup
		var delCode, putCode int
		var delBody, putBody []byte
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			putCode, putBody, _ = c.do("PUT", path, keyAcme, []byte(`{"name": "renamed"}`))
		})
		wg.Go(func() {
			<-start
			delCode, delBody, _ = c.do("DELETE", path, keyAcme, nil)
		})
		close(start)
		wg.Wait()
		putAnswers[putCode]++
		var deleted schemas.Subscription
		if delCode != http.StatusOK || json.Unmarshal(delBody, &deleted) != nil ||
			deleted.Status != schemas.StatusTerminated || deleted.TerminatedAt == nil {
			t.Fatalf("DELETE %s: %d %s", path, delCode, delBody)
		}
		if putCode != http.StatusOK && putCode != http.StatusBadRequest { // 400: it read the termination
			t.Fatalf("PUT %s: %d %s", path, putCode, putBody)
		}
		s := c.getSubscription(keyAcme, id)
		if s.TerminatedAt == nil || !s.TerminatedAt.Equal(*deleted.TerminatedAt) || s.Status != schemas.StatusTerminated {
			lost++
			if lost <= 3 {
				t.Errorf("%s: DELETE answered 200 terminated at %s (PUT %d), but GET says status %s, terminated_at %v",
					id, deleted.TerminatedAt, putCode, s.Status, s.TerminatedAt)
			}
		}
		if renamed := s.Name == "renamed"; renamed != (putCode == http.StatusOK) {
			t.Errorf("%s: PUT answered %d %s, and the name is %q", id, putCode, putBody, s.Name)
		}
	}
	t.Logf("PUT answers: %v", putAnswers)
	if lost > 0 {
		t.Errorf("%d of %d terminations lost to a concurrent PUT", lost, n)
	}
	id := func(s schemas.Subscription) string { return s.ExternalID }
	if got := listAll(c, SubscriptionsRoute, keyAcme, "&status=terminated", 40, id); !slices.Equal(got, ids) {
		t.Errorf("terminated subscriptions listed: %d of %d", len(got), len(ids))
	}
}

package catalogstore

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tally-oss/tally/schemas"
)

var (
	paris = time.FixedZone("CET", 3600)
	jan1  = time.Date(2026, 1, 1, 0, 0, 0, 0, paris)
)

func subscription(id, customer, plan string) schemas.Subscription {
	return schemas.Subscription{ExternalID: id, ExternalCustomerID: customer, PlanCode: plan,
		SubscriptionAt: jan1, BillingTime: schemas.BillingCalendar, Timezone: "Europe/Paris"}
}

func TestSubscriptionCRUD(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	in := subscription("sub_1", "cus_1", "pro")
	ending := jan1.AddDate(1, 0, 0)
	in.EndingAt, in.Name, in.Status = &ending, "Pro for Acme", schemas.StatusActive
	created, err := s.CreateSubscription(ctx, "acme", in)
	if err != nil {
		t.Fatal(err)
	}
	if created.CreatedAt.IsZero() || created.Status != "" {
		t.Errorf("created: CreatedAt %v, status %q (never stored)", created.CreatedAt, created.Status)
	}
	got, err := s.GetSubscription(ctx, "acme", "sub_1")
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "Get", got, created)
	if !got.SubscriptionAt.Equal(jan1) || !got.EndingAt.Equal(ending) || got.TerminatedAt != nil {
		t.Errorf("times: %+v", got)
	}
	if st := got.StatusAt(jan1.Add(time.Hour)); st != schemas.StatusActive {
		t.Errorf("status %s", st)
	}
	if _, err := s.CreateSubscription(ctx, "acme", in); !errors.Is(err, ErrExists) {
		t.Errorf("second Create: %v, want ErrExists", err)
	}
	for _, id := range []string{"never", ""} {
		if _, err := s.GetSubscription(ctx, "acme", id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get %q: %v", id, err)
		}
	}
	if _, err := s.CreateSubscription(ctx, "acme", subscription("", "cus_1", "pro")); err == nil {
		t.Error("Create without external_id succeeded")
	}
}

// TestTerminateSubscription: a termination is kept, a second one changes
// nothing, and the terminated subscription is still listed.
func TestTerminateSubscription(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	created, err := s.CreateSubscription(ctx, "acme", subscription("sub_1", "cus_1", "pro"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 15, 10, 30, 0, 0, paris)
	terminated, err := s.TerminateSubscription(ctx, "acme", "sub_1", at)
	if err != nil {
		t.Fatal(err)
	}
	if terminated.TerminatedAt == nil || !terminated.TerminatedAt.Equal(at) || !terminated.CreatedAt.Equal(created.CreatedAt) {
		t.Errorf("terminated %+v", terminated)
	}
	again, err := s.TerminateSubscription(ctx, "acme", "sub_1", at.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "second termination", again, terminated)
	got, err := s.GetSubscription(ctx, "acme", "sub_1")
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "Get after termination", got, terminated)
	if st := got.StatusAt(at); st != schemas.StatusTerminated {
		t.Errorf("status at termination %s", st)
	}
	if st := got.StatusAt(at.Add(-time.Second)); st != schemas.StatusActive {
		t.Errorf("status before termination %s", st)
	}
	list, err := s.ListSubscriptions(ctx, "acme", SubscriptionFilter{})
	if err != nil || len(list) != 1 || list[0].TerminatedAt == nil {
		t.Errorf("terminated subscription not listed: %+v, %v", list, err)
	}
	if r := revisionOf(t, s.subscriptions, "acme", "sub_1"); r == 0 {
		t.Error("no revision")
	}
	if _, err := s.TerminateSubscription(ctx, "acme", "never", at); !errors.Is(err, ErrNotFound) {
		t.Errorf("Terminate unknown: %v", err)
	}
}

// TestListSubscriptionsFilters: the filters apply to the current version
// in SQL (so pages are full), match values exactly whatever characters
// they hold, and are not fooled by another property's text.
func TestListSubscriptionsFilters(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	const odd = `c&"q"\ü💳`
	trap := subscription("sub_6", "cus_b", "basic")
	trap.Name = `x","external_customer_id":"cus_a","plan_code":"pro`
	for _, sub := range []schemas.Subscription{
		subscription("sub_1", "cus_a", "pro"),
		subscription("sub_2", "cus_a", "basic"),
		subscription("sub_3", "cus_b", "pro"),
		subscription("sub_4", "cus_a", "pro"),
		subscription("sub_5", odd, "pro"),
		trap,
		subscription("sub_7", "cus_a_suffix", "pro"),
	} {
		if _, err := s.CreateSubscription(ctx, "acme", sub); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.TerminateSubscription(ctx, "acme", "sub_4", jan1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    SubscriptionFilter
		want []string
	}{
		{"all", SubscriptionFilter{}, []string{"sub_1", "sub_2", "sub_3", "sub_4", "sub_5", "sub_6", "sub_7"}},
		{"customer", SubscriptionFilter{CustomerID: "cus_a"}, []string{"sub_1", "sub_2", "sub_4"}},
		{"plan", SubscriptionFilter{PlanCode: "pro"}, []string{"sub_1", "sub_3", "sub_4", "sub_5", "sub_7"}},
		{"customer and plan", SubscriptionFilter{CustomerID: "cus_a", PlanCode: "pro"}, []string{"sub_1", "sub_4"}},
		{"odd characters", SubscriptionFilter{CustomerID: odd}, []string{"sub_5"}},
		{"prefix is no match", SubscriptionFilter{CustomerID: "cus"}, nil},
		{"unknown plan", SubscriptionFilter{PlanCode: "gold"}, nil},
		{"page 1", SubscriptionFilter{PlanCode: "pro", Limit: 2}, []string{"sub_1", "sub_3"}},
		{"page 2", SubscriptionFilter{PlanCode: "pro", After: "sub_3", Limit: 2}, []string{"sub_4", "sub_5"}},
		{"page 3", SubscriptionFilter{PlanCode: "pro", After: "sub_5", Limit: 2}, []string{"sub_7"}},
		{"customer after", SubscriptionFilter{CustomerID: "cus_a", After: "sub_1"}, []string{"sub_2", "sub_4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := s.ListSubscriptions(ctx, "acme", tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, sub := range list {
				ids = append(ids, sub.ExternalID)
				if (tc.f.CustomerID != "" && sub.ExternalCustomerID != tc.f.CustomerID) || (tc.f.PlanCode != "" && sub.PlanCode != tc.f.PlanCode) {
					t.Errorf("%s does not match the filter: %+v", sub.ExternalID, sub)
				}
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("ids %v, want %v", ids, tc.want)
			}
		})
	}
}

func TestUpdateSubscription(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	created, err := s.CreateSubscription(ctx, "acme", subscription("sub_1", "cus_1", "pro"))
	if err != nil {
		t.Fatal(err)
	}
	end := time.Date(2026, 4, 1, 0, 0, 0, 0, paris)
	updated, err := s.UpdateSubscription(ctx, "acme", "sub_1", func(sub *schemas.Subscription) error {
		sub.EndingAt, sub.Name, sub.ExternalID = &end, "renamed", "ignored"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSubscription(ctx, "acme", "sub_1")
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "Get after update", got, updated)
	if got.EndingAt == nil || !got.EndingAt.Equal(end) || got.Name != "renamed" || got.ExternalID != "sub_1" ||
		!got.CreatedAt.Equal(created.CreatedAt) || revisionOf(t, s.subscriptions, "acme", "sub_1") == 0 {
		t.Errorf("updated %+v", got)
	}
	refused := errors.New("no")
	if _, err := s.UpdateSubscription(ctx, "acme", "sub_1", func(*schemas.Subscription) error { return refused }); !errors.Is(err, refused) {
		t.Errorf("a refused change: %v", err)
	}
	if after, _ := s.GetSubscription(ctx, "acme", "sub_1"); after.Name != "renamed" {
		t.Errorf("a refused change wrote: %+v", after)
	}
	for _, org := range []string{"globex", ""} {
		if _, err := s.UpdateSubscription(ctx, org, "sub_1", func(*schemas.Subscription) error { return nil }); err == nil {
			t.Errorf("org %q updated acme's subscription", org)
		}
	}
}

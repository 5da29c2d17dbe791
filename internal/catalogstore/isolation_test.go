package catalogstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/docstore"
	"github.com/tally-oss/tally/schemas"
)

// orgRows is everything an organization can read, to compare before and
// after another organization's calls.
func orgRows(t *testing.T, s *Store, orgID string) string {
	t.Helper()
	ctx := context.Background()
	customers, err1 := s.ListCustomers(ctx, orgID, "", 0)
	plans, err2 := s.ListPlans(ctx, orgID, "", 0)
	subs, err3 := s.ListSubscriptions(ctx, orgID, SubscriptionFilter{})
	hash, status, body, found, err4 := s.LookupIdempotent(ctx, orgID, "scope", "key", time.Time{})
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		t.Fatal(err)
	}
	out, err := encode([]any{customers, plans, subs, hash, status, string(body), found})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOrganizationsIsolated: organization "a" reaches none of "b"'s rows
// through any method, with "b"'s keys, and its own writes under the same
// keys leave "b"'s rows as they were.
func TestOrganizationsIsolated(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, _, err := s.PutCustomer(ctx, "b", schemas.Customer{ExternalID: "cus", Name: "B's"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreatePlan(ctx, "b", plan("pro", standardCharge("", "tokens", "1"))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSubscription(ctx, "b", subscription("sub", "cus", "pro")); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveIdempotent(ctx, "b", "scope", "key", "hash", 201, []byte("b's answer")); err != nil {
		t.Fatal(err)
	}
	before := orgRows(t, s, "b")

	// Every method, called by "a" with "b"'s keys, finds nothing.
	empty := func(n int, err error) error {
		if err == nil && n != 0 {
			return fmt.Errorf("%d rows of another organization", n)
		}
		return err
	}
	notFound := func(err error) error {
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return fmt.Errorf("%v, want ErrNotFound", err)
	}
	for _, tc := range []struct {
		method string
		call   func(orgID string) error
	}{
		{"GetCustomer", func(o string) error { _, err := s.GetCustomer(ctx, o, "cus"); return notFound(err) }},
		{"ListCustomers", func(o string) error { l, err := s.ListCustomers(ctx, o, "", 0); return empty(len(l), err) }},
		{"DeleteCustomer", func(o string) error { return notFound(s.DeleteCustomer(ctx, o, "cus")) }},
		{"GetPlan", func(o string) error { _, err := s.GetPlan(ctx, o, "pro"); return notFound(err) }},
		{"ListPlans", func(o string) error { l, err := s.ListPlans(ctx, o, "", 0); return empty(len(l), err) }},
		{"UpdatePlan", func(o string) error { _, err := s.UpdatePlan(ctx, o, plan("pro")); return notFound(err) }},
		{"DeletePlan", func(o string) error { return notFound(s.DeletePlan(ctx, o, "pro")) }},
		{"GetSubscription", func(o string) error { _, err := s.GetSubscription(ctx, o, "sub"); return notFound(err) }},
		{"ListSubscriptions", func(o string) error {
			l, err := s.ListSubscriptions(ctx, o, SubscriptionFilter{CustomerID: "cus", PlanCode: "pro"})
			return empty(len(l), err)
		}},
		{"TerminateSubscription", func(o string) error {
			_, err := s.TerminateSubscription(ctx, o, "sub", time.Now())
			return notFound(err)
		}},
		{"LookupIdempotent", func(o string) error {
			_, _, _, found, err := s.LookupIdempotent(ctx, o, "scope", "key", time.Time{})
			if err == nil && found {
				return errors.New("found another organization's response")
			}
			return err
		}},
	} {
		t.Run(tc.method, func(t *testing.T) {
			if err := tc.call("a"); err != nil {
				t.Error(err)
			}
			if after := orgRows(t, s, "b"); after != before {
				t.Errorf("b's rows changed:\n%s\n%s", before, after)
			}
		})
	}

	// "a" writes under "b"'s keys: its own rows, "b"'s unchanged.
	if _, created, err := s.PutCustomer(ctx, "a", schemas.Customer{ExternalID: "cus", Name: "A's"}); err != nil || !created {
		t.Errorf("PutCustomer: created %v, %v", created, err)
	}
	if _, err := s.CreatePlan(ctx, "a", plan("pro")); err != nil {
		t.Errorf("CreatePlan: %v", err)
	}
	if _, err := s.CreateSubscription(ctx, "a", subscription("sub", "cus", "pro")); err != nil {
		t.Errorf("CreateSubscription: %v", err)
	}
	if err := s.SaveIdempotent(ctx, "a", "scope", "key", "other", 200, []byte("a's answer")); err != nil {
		t.Error(err)
	}
	if _, err := s.TerminateSubscription(ctx, "a", "sub", time.Now()); err != nil {
		t.Error(err)
	}
	if err := errors.Join(s.DeleteCustomer(ctx, "a", "cus"), s.DeletePlan(ctx, "a", "pro")); err != nil {
		t.Error(err)
	}
	if after := orgRows(t, s, "b"); after != before {
		t.Errorf("b's rows changed by a's writes:\n%s\n%s", before, after)
	}
	if _, _, body, _, _ := s.LookupIdempotent(ctx, "a", "scope", "key", time.Time{}); string(body) != "a's answer" {
		t.Errorf("a's response is %q", body)
	}
}

// TestOrganizationRequired: every method refuses an empty organization
// and writes nothing.
func TestOrganizationRequired(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, tc := range []struct {
		method string
		call   func() error
	}{
		{"PutCustomer", func() error { _, _, err := s.PutCustomer(ctx, "", schemas.Customer{ExternalID: "cus"}); return err }},
		{"GetCustomer", func() error { _, err := s.GetCustomer(ctx, "", "cus"); return err }},
		{"ListCustomers", func() error { _, err := s.ListCustomers(ctx, "", "", 10); return err }},
		{"DeleteCustomer", func() error { return s.DeleteCustomer(ctx, "", "cus") }},
		{"CreatePlan", func() error { _, err := s.CreatePlan(ctx, "", plan("pro")); return err }},
		{"UpdatePlan", func() error { _, err := s.UpdatePlan(ctx, "", plan("pro")); return err }},
		{"GetPlan", func() error { _, err := s.GetPlan(ctx, "", "pro"); return err }},
		{"ListPlans", func() error { _, err := s.ListPlans(ctx, "", "", 10); return err }},
		{"DeletePlan", func() error { return s.DeletePlan(ctx, "", "pro") }},
		{"CreateSubscription", func() error {
			_, err := s.CreateSubscription(ctx, "", subscription("sub", "cus", "pro"))
			return err
		}},
		{"GetSubscription", func() error { _, err := s.GetSubscription(ctx, "", "sub"); return err }},
		{"ListSubscriptions", func() error { _, err := s.ListSubscriptions(ctx, "", SubscriptionFilter{}); return err }},
		{"TerminateSubscription", func() error { _, err := s.TerminateSubscription(ctx, "", "sub", time.Now()); return err }},
		{"SaveIdempotent", func() error { return s.SaveIdempotent(ctx, "", "scope", "key", "h", 200, nil) }},
		{"LookupIdempotent", func() error {
			_, _, _, _, err := s.LookupIdempotent(ctx, "", "scope", "key", time.Time{})
			return err
		}},
	} {
		if err := tc.call(); !errors.Is(err, docstore.ErrNoOrg) {
			t.Errorf("%s without an organization: %v, want ErrNoOrg", tc.method, err)
		}
	}
	for _, table := range []string{customersTable, plansTable, subscriptionsTable, idempotencyKeyTable, subscriptionTerminationsTable} {
		var n uint64
		if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s has %d rows", table, n)
		}
	}
}

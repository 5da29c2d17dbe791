package catalogstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/tally-oss/tally/schemas"
)

func TestCustomerCRUD(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	in := schemas.Customer{ExternalID: "cus_1", Name: "Acme", Currency: "EUR", Timezone: "Europe/Paris", Metadata: map[string]string{"tier": "gold"}}
	first, created, err := s.PutCustomer(ctx, "acme", in)
	if err != nil || !created {
		t.Fatalf("first Put: created %v, %v", created, err)
	}
	if first.CreatedAt.IsZero() || !first.UpdatedAt.Equal(first.CreatedAt) {
		t.Errorf("first Put times: created %v, updated %v", first.CreatedAt, first.UpdatedAt)
	}
	got, err := s.GetCustomer(ctx, "acme", "cus_1")
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "Get", got, first)
	revision := revisionOf(t, s.customers, "acme", "cus_1")

	in.Name, in.Email = "Acme Corp", "billing@acme.test"
	second, created, err := s.PutCustomer(ctx, "acme", in)
	if err != nil || created {
		t.Fatalf("second Put: created %v, %v", created, err)
	}
	if !second.CreatedAt.Equal(first.CreatedAt) || !second.UpdatedAt.After(first.UpdatedAt) {
		t.Errorf("second Put times: created %v (was %v), updated %v (was %v)", second.CreatedAt, first.CreatedAt, second.UpdatedAt, first.UpdatedAt)
	}
	got, _ = s.GetCustomer(ctx, "acme", "cus_1")
	sameJSON(t, "Get after update", got, second)
	if r := revisionOf(t, s.customers, "acme", "cus_1"); r != revision {
		t.Errorf("update changed the revision from %d to %d", revision, r)
	}

	if err := s.DeleteCustomer(ctx, "acme", "cus_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetCustomer(ctx, "acme", "cus_1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get deleted: %v", err)
	}
	if err := s.DeleteCustomer(ctx, "acme", "cus_1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete twice: %v", err)
	}
	for _, id := range []string{"never", ""} {
		if _, err := s.GetCustomer(ctx, "acme", id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get %q: %v", id, err)
		}
		if err := s.DeleteCustomer(ctx, "acme", id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Delete %q: %v", id, err)
		}
	}

	// Deleted then put again: a new customer, with a new revision.
	again, created, err := s.PutCustomer(ctx, "acme", in)
	if err != nil || !created {
		t.Fatalf("Put after delete: created %v, %v", created, err)
	}
	if !again.CreatedAt.After(second.UpdatedAt) {
		t.Errorf("recreated customer kept CreatedAt %v", again.CreatedAt)
	}
	if r := revisionOf(t, s.customers, "acme", "cus_1"); r <= revision {
		t.Errorf("recreated revision %d, first was %d", r, revision)
	}

	if _, _, err := s.PutCustomer(ctx, "acme", schemas.Customer{Name: "no id"}); err == nil {
		t.Error("Put without external_id succeeded")
	}
}

// TestCustomerStoredAsGiven: values that JSON escapes, or that a naive
// filter could confuse, come back unchanged.
func TestCustomerStoredAsGiven(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	in := schemas.Customer{ExternalID: `a&b<c>"d"\e ü 💳`, Name: "line\nbreak\ttab", Metadata: map[string]string{"k\"ey": "v&l"}}
	out, _, err := s.PutCustomer(ctx, "acme", in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetCustomer(ctx, "acme", in.ExternalID)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "Get", got, out)
}

func TestListCustomersPages(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, i := range []int{4, 2, 5, 1, 3, 6} { // inserted out of order
		if _, _, err := s.PutCustomer(ctx, "acme", schemas.Customer{ExternalID: fmt.Sprintf("cus_%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteCustomer(ctx, "acme", "cus_3"); err != nil {
		t.Fatal(err)
	}
	// Updated after the others: still one entry, in its place.
	if _, _, err := s.PutCustomer(ctx, "acme", schemas.Customer{ExternalID: "cus_2", Name: "renamed"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		after string
		limit int
		want  []string
	}{
		{"", 0, []string{"cus_1", "cus_2", "cus_4", "cus_5", "cus_6"}},
		{"", 2, []string{"cus_1", "cus_2"}},
		{"cus_2", 2, []string{"cus_4", "cus_5"}},
		{"cus_5", 2, []string{"cus_6"}},
		{"cus_6", 2, nil},
		{"cus_", 1, []string{"cus_1"}},
	} {
		list, err := s.ListCustomers(ctx, "acme", tc.after, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range list {
			ids = append(ids, c.ExternalID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("ListCustomers(after %q, limit %d) = %v, want %v", tc.after, tc.limit, ids, tc.want)
		}
	}
	list, _ := s.ListCustomers(ctx, "acme", "cus_1", 1)
	if len(list) != 1 || list[0].Name != "renamed" {
		t.Errorf("list shows an old version: %+v", list)
	}
}

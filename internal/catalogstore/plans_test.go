package catalogstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/schemas"
)

func plan(code string, charges ...schemas.Charge) schemas.Plan {
	return schemas.Plan{Code: code, Name: "Plan " + code, Interval: schemas.IntervalMonthly,
		AmountCents: 1000, AmountCurrency: "EUR", Charges: charges}
}

func standardCharge(id, meter, amount string) schemas.Charge {
	a := decimal.RequireFromString(amount)
	return schemas.Charge{ID: id, Meter: meter, ChargeModel: schemas.ChargeStandard, Properties: schemas.ChargeProperties{Amount: &a}}
}

func chargeIDs(p schemas.Plan) []string {
	var ids []string
	for _, c := range p.Charges {
		ids = append(ids, c.ID)
	}
	return ids
}

func TestPlanCRUD(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	to := decimal.RequireFromString("1000")
	graduated := schemas.Charge{Meter: "calls", ChargeModel: schemas.ChargeGraduated, Properties: schemas.ChargeProperties{
		GraduatedRanges: []schemas.Range{
			{FromValue: decimal.Zero, ToValue: &to, PerUnitAmount: decimal.RequireFromString("0.01")},
			{FromValue: to, PerUnitAmount: decimal.RequireFromString("0.005"), FlatAmount: decimal.RequireFromString("2")},
		}}}
	in := plan("pro", standardCharge("", "tokens", "0.000002"), graduated)
	in.Revision = 7 // assigned by the store, whatever the caller sent
	created, err := s.CreatePlan(ctx, "acme", in)
	if err != nil {
		t.Fatal(err)
	}
	if created.Revision == 0 || created.Revision == 7 || created.CreatedAt.IsZero() || !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Errorf("created: revision %d, times %v %v", created.Revision, created.CreatedAt, created.UpdatedAt)
	}
	for _, id := range chargeIDs(created) {
		if !generatedChargeID.MatchString(id) {
			t.Errorf("charge id %q", id)
		}
	}
	if in.Charges[0].ID != "" {
		t.Error("CreatePlan modified the caller's charges")
	}
	got, err := s.GetPlan(ctx, "acme", "pro")
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "Get", got, created)
	if _, err := s.CreatePlan(ctx, "acme", plan("pro")); !errors.Is(err, ErrExists) {
		t.Errorf("second Create: %v, want ErrExists", err)
	}

	// An update without charge ids, charges reordered and priced anew:
	// each keeps its id, as do the revision and CreatedAt.
	update := plan("pro", graduated, standardCharge("", "tokens", "0.000003"))
	update.Name = "Pro 2"
	updated, err := s.UpdatePlan(ctx, "acme", update)
	if err != nil {
		t.Fatal(err)
	}
	ids := chargeIDs(created)
	if got := chargeIDs(updated); !slices.Equal(got, []string{ids[1], ids[0]}) {
		t.Errorf("charge ids after update %v, created %v", got, ids)
	}
	if updated.Revision != created.Revision || !updated.CreatedAt.Equal(created.CreatedAt) || !updated.UpdatedAt.After(created.UpdatedAt) {
		t.Errorf("updated: revision %d (was %d), created %v (was %v), updated %v", updated.Revision, created.Revision, updated.CreatedAt, created.CreatedAt, updated.UpdatedAt)
	}
	got, _ = s.GetPlan(ctx, "acme", "pro")
	sameJSON(t, "Get after update", got, updated)
	if got.Name != "Pro 2" || got.Charges[1].Properties.Amount.String() != "0.000003" {
		t.Errorf("stored update %+v", got)
	}

	if _, err := s.UpdatePlan(ctx, "acme", plan("never")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update unknown: %v", err)
	}
	if err := s.DeletePlan(ctx, "acme", "pro"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPlan(ctx, "acme", "pro"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get deleted: %v", err)
	}
	if _, err := s.UpdatePlan(ctx, "acme", update); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update deleted: %v", err)
	}
	if err := s.DeletePlan(ctx, "acme", "pro"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete twice: %v", err)
	}

	// Deleted then created again: a new revision and new charge ids.
	again, err := s.CreatePlan(ctx, "acme", update)
	if err != nil {
		t.Fatal(err)
	}
	if again.Revision <= created.Revision {
		t.Errorf("recreated revision %d, first was %d", again.Revision, created.Revision)
	}
	if slices.ContainsFunc(chargeIDs(again), func(id string) bool { return slices.Contains(ids, id) }) {
		t.Errorf("recreated plan reuses charge ids %v", chargeIDs(again))
	}
	if _, err := s.CreatePlan(ctx, "acme", plan("")); err == nil {
		t.Error("Create without a code succeeded")
	}
}

// TestUpdatePlanChargeIDs: the matching rule against the stored version,
// with explicit ids.
func TestUpdatePlanChargeIDs(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	created, err := s.CreatePlan(ctx, "acme", plan("pro",
		standardCharge("", "tokens", "1"), standardCharge("", "tokens", "2"), standardCharge("", "calls", "3")))
	if err != nil {
		t.Fatal(err)
	}
	tokensA, tokensB, calls := created.Charges[0].ID, created.Charges[1].ID, created.Charges[2].ID

	// Two previous charges on tokens: a charge without id cannot tell
	// which it is, unless an explicit id claims the other.
	updated, err := s.UpdatePlan(ctx, "acme", plan("pro",
		standardCharge("", "tokens", "4"), standardCharge(tokensA, "tokens", "5"), standardCharge("", "calls", "6")))
	if err != nil {
		t.Fatal(err)
	}
	if got := chargeIDs(updated); !slices.Equal(got, []string{tokensB, tokensA, calls}) {
		t.Errorf("ids %v, want [%s %s %s]", got, tokensB, tokensA, calls)
	}

	updated, err = s.UpdatePlan(ctx, "acme", plan("pro",
		standardCharge("", "tokens", "7"), standardCharge("ch_0123456789abcdef", "storage", "8")))
	if err != nil {
		t.Fatal(err)
	}
	ids := chargeIDs(updated)
	if ids[0] == tokensA || ids[0] == tokensB || !generatedChargeID.MatchString(ids[0]) || ids[1] != "ch_0123456789abcdef" {
		t.Errorf("ids %v: want a new id for the ambiguous tokens charge, and the explicit one", ids)
	}
	stored, _ := s.GetPlan(ctx, "acme", "pro")
	sameJSON(t, "stored", stored, updated)

	if _, err := s.UpdatePlan(ctx, "acme", plan("pro", standardCharge("ch_x", "a", "1"), standardCharge("ch_x", "b", "1"))); err == nil {
		t.Error("an update with two charges of one id succeeded")
	}
}

func TestListPlansPages(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, code := range []string{"c", "a", "e", "b", "d"} {
		if _, err := s.CreatePlan(ctx, "acme", plan(code)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeletePlan(ctx, "acme", "b"); err != nil {
		t.Fatal(err)
	}
	var pages [][]string
	after := ""
	for range 5 {
		list, err := s.ListPlans(ctx, "acme", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 0 {
			break
		}
		var codes []string
		for _, p := range list {
			if p.Revision == 0 {
				t.Errorf("plan %s listed without its revision", p.Code)
			}
			codes = append(codes, p.Code)
		}
		pages = append(pages, codes)
		after = codes[len(codes)-1]
	}
	if got, want := fmt.Sprint(pages), "[[a c] [d e]]"; got != want {
		t.Errorf("pages %s, want %s", got, want)
	}
}

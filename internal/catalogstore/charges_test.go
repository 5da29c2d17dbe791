package catalogstore

import (
	"regexp"
	"slices"
	"testing"

	"github.com/tally-oss/tally/schemas"
)

var generatedChargeID = regexp.MustCompile(`^ch_[0-9a-f]{16}$`)

// TestAssignChargeIDs: "new" in want means a freshly generated id.
func TestAssignChargeIDs(t *testing.T) {
	c := func(id, meter string) schemas.Charge { return schemas.Charge{ID: id, Meter: meter} }
	for _, tc := range []struct {
		name string
		prev []schemas.Charge
		next []schemas.Charge
		want []string
	}{
		{"new plan", nil, []schemas.Charge{c("", "tokens"), c("", "calls")}, []string{"new", "new"}},
		{"new plan keeps given ids", nil, []schemas.Charge{c("ch_mine", "tokens"), c("", "calls")}, []string{"ch_mine", "new"}},
		{"same meters, reordered",
			[]schemas.Charge{c("ch_a", "tokens"), c("ch_b", "calls")},
			[]schemas.Charge{c("", "calls"), c("", "tokens")},
			[]string{"ch_b", "ch_a"}},
		{"two previous charges on the meter: ambiguous",
			[]schemas.Charge{c("ch_a", "tokens"), c("ch_b", "tokens")},
			[]schemas.Charge{c("", "tokens")},
			[]string{"new"}},
		{"an explicit id claims first, the other is then the only one",
			[]schemas.Charge{c("ch_a", "tokens"), c("ch_b", "tokens")},
			[]schemas.Charge{c("", "tokens"), c("ch_a", "tokens")},
			[]string{"ch_b", "ch_a"}},
		{"claimed by an explicit id, none left",
			[]schemas.Charge{c("ch_a", "tokens")},
			[]schemas.Charge{c("", "tokens"), c("ch_a", "tokens")},
			[]string{"new", "ch_a"}},
		{"two new charges on one previous: the first takes it",
			[]schemas.Charge{c("ch_a", "tokens")},
			[]schemas.Charge{c("", "tokens"), c("", "tokens")},
			[]string{"ch_a", "new"}},
		{"another meter",
			[]schemas.Charge{c("ch_a", "tokens")},
			[]schemas.Charge{c("", "calls")},
			[]string{"new"}},
		{"an explicit id not in the previous version is kept",
			[]schemas.Charge{c("ch_a", "tokens")},
			[]schemas.Charge{c("ch_custom", "tokens"), c("", "tokens")},
			[]string{"ch_custom", "ch_a"}},
		{"an explicit id may move to another meter",
			[]schemas.Charge{c("ch_a", "tokens")},
			[]schemas.Charge{c("ch_a", "calls"), c("", "tokens")},
			[]string{"ch_a", "new"}},
		{"no charges", []schemas.Charge{c("ch_a", "tokens")}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := slices.Clone(tc.next)
			got, err := assignChargeIDs(tc.prev, next)
			if err != nil {
				t.Fatal(err)
			}
			for i := range next {
				if next[i].ID != tc.next[i].ID {
					t.Error("the caller's charges were modified")
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d charges, want %d", len(got), len(tc.want))
			}
			seen := map[string]bool{}
			for i, ch := range got {
				if ch.Meter != tc.next[i].Meter {
					t.Errorf("charge %d: meter %s, want %s", i, ch.Meter, tc.next[i].Meter)
				}
				if seen[ch.ID] {
					t.Errorf("charge %d: id %s given twice", i, ch.ID)
				}
				seen[ch.ID] = true
				if tc.want[i] == "new" {
					if !generatedChargeID.MatchString(ch.ID) || slices.ContainsFunc(tc.prev, func(p schemas.Charge) bool { return p.ID == ch.ID }) {
						t.Errorf("charge %d: id %q, want a new one", i, ch.ID)
					}
				} else if ch.ID != tc.want[i] {
					t.Errorf("charge %d: id %q, want %q", i, ch.ID, tc.want[i])
				}
			}
		})
	}
}

func TestAssignChargeIDsRefusesDuplicates(t *testing.T) {
	next := []schemas.Charge{{ID: "ch_a", Meter: "tokens"}, {ID: "ch_a", Meter: "calls"}}
	if _, err := assignChargeIDs(nil, next); err == nil {
		t.Error("two charges with one id were accepted")
	}
}

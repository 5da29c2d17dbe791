package catalogstore

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/tally-oss/tally/schemas"
)

// assignChargeIDs returns a copy of next (a plan's new charges) in which
// every charge has an id; prev are the charges of the version it replaces
// (none for a new plan). Charge ids are what invoices and usage refer to,
// so an update keeps them wherever it can tell which charge is which:
//
//  1. A charge with an id keeps it: one of prev's ids claims that charge,
//     any other id was validated by the caller.
//  2. A charge without an id, in order, takes the id of the previous
//     charge on the same meter when exactly one such charge is not yet
//     claimed (by an explicit id, or by an earlier charge of step 2).
//  3. Any other charge gets a new id.
//
// Two charges with the same id are an error: ids identify charges.
func assignChargeIDs(prev, next []schemas.Charge) ([]schemas.Charge, error) {
	out := make([]schemas.Charge, len(next))
	copy(out, next)
	claimed := map[string]bool{}
	for _, c := range out {
		if c.ID == "" {
			continue
		}
		if claimed[c.ID] {
			return nil, fmt.Errorf("charge id %s is used by two charges", c.ID)
		}
		claimed[c.ID] = true
	}
	taken := map[string]bool{} // never reuse a dropped charge's id
	for _, p := range prev {
		taken[p.ID] = true
	}
	for i, c := range out {
		if c.ID != "" {
			continue
		}
		var match string
		n := 0
		for _, p := range prev {
			if p.Meter == c.Meter && p.ID != "" && !claimed[p.ID] {
				match, n = p.ID, n+1
			}
		}
		if n != 1 {
			match = newChargeID(claimed, taken)
		}
		out[i].ID = match
		claimed[match] = true
	}
	return out, nil
}

// newChargeID returns "ch_" and 16 random hex digits, an id in neither
// set.
func newChargeID(claimed, taken map[string]bool) string {
	for {
		b := make([]byte, 8)
		_, _ = rand.Read(b) // crypto/rand.Read never fails since Go 1.24
		id := "ch_" + hex.EncodeToString(b)
		if !claimed[id] && !taken[id] {
			return id
		}
	}
}

package rating_test

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the same zone rules on every machine that runs the tests

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/schemas"
)

// dec parses an exact decimal; tests write every number as a string so
// that no float ever rounds one.
func dec(s string) decimal.Decimal {
	return decimal.RequireFromString(s)
}

func decPtr(s string) *decimal.Decimal {
	d := dec(s)
	return &d
}

// tiers parses the tier notation the charge tables use, one range per
// "|": "0..100 @0.10 | 100..500 @0.05 +1 | 500.. @0.01" is 0 to 100 at
// 0.10 per unit, 100 to 500 at 0.05 per unit plus a flat 1, and above 500
// at 0.01. An empty upper bound is an unbounded range.
func tiers(notation string) []schemas.Range {
	var ranges []schemas.Range
	for _, spec := range strings.Split(notation, "|") {
		fields := strings.Fields(spec)
		bounds := strings.SplitN(fields[0], "..", 2)
		r := schemas.Range{FromValue: dec(bounds[0])}
		if bounds[1] != "" {
			r.ToValue = decPtr(bounds[1])
		}
		for _, f := range fields[1:] {
			switch f[0] {
			case '@':
				r.PerUnitAmount = dec(f[1:])
			case '+':
				r.FlatAmount = dec(f[1:])
			default:
				panic("tiers: cannot read " + f)
			}
		}
		ranges = append(ranges, r)
	}
	return ranges
}

func standard(amount string) schemas.Charge {
	return schemas.Charge{ChargeModel: schemas.ChargeStandard, Properties: schemas.ChargeProperties{Amount: decPtr(amount)}}
}

func graduated(notation string) schemas.Charge {
	return schemas.Charge{ChargeModel: schemas.ChargeGraduated, Properties: schemas.ChargeProperties{GraduatedRanges: tiers(notation)}}
}

func volume(notation string) schemas.Charge {
	return schemas.Charge{ChargeModel: schemas.ChargeVolume, Properties: schemas.ChargeProperties{VolumeRanges: tiers(notation)}}
}

// packaged is a package charge: amount per started package of size units
// after free units.
func packaged(amount, size, free string) schemas.Charge {
	p := schemas.ChargeProperties{Amount: decPtr(amount), PackageSize: decPtr(size)}
	if free != "" {
		p.FreeUnits = decPtr(free)
	}
	return schemas.Charge{ChargeModel: schemas.ChargePackage, Properties: p}
}

func withID(id string, c schemas.Charge) schemas.Charge {
	c.ID = id
	return c
}

func mustLocation(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load zone %s: %v", name, err)
	}
	return loc
}

// instant parses an RFC 3339 time; tables write the offset out, so a
// reader sees which side of a DST change each boundary is on.
func instant(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return v
}

package rating_test

import (
	"errors"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/query/rating"
	"github.com/tally-oss/tally/schemas"
)

// The tiers most tables below use, in the continuous notation (each range
// starts where the previous one ends) and in Lago's integer notation (each
// starts one above). Both mean: the first 100 units at 0.10, the next 400
// at 0.05 plus a flat 1 once usage goes past 100, everything above 500 at
// 0.01 (plus a flat 2 for volume).
const (
	graduatedTiers        = "0..100 @0.10 | 100..500 @0.05 +1 | 500.. @0.01"
	graduatedTiersInteger = "0..100 @0.10 | 101..500 @0.05 +1 | 501.. @0.01"
	volumeTiers           = "0..100 @0.10 | 100..500 @0.05 +1 | 500.. @0.01 +2"
	volumeTiersInteger    = "0..100 @0.10 | 101..500 @0.05 +1 | 501.. @0.01 +2"
)

func TestChargeAmount(t *testing.T) {
	tests := []struct {
		name   string
		charge schemas.Charge
		units  string
		want   string // exact, unrounded, major units
	}{
		// standard: units × amount, sub-cent results kept exact.
		{"standard zero", standard("0.0123"), "0", "0"},
		{"standard", standard("0.0123"), "1000", "12.3"},
		{"standard fractional units", standard("0.0123"), "0.5", "0.00615"},
		{"standard negative units are a credit", standard("0.0123"), "-10", "-0.123"},

		// graduated: 100 × 0.10 = 10; 400 × 0.05 + 1 = 21; 0.01 per unit above 500.
		{"graduated zero", graduated(graduatedTiers), "0", "0"},
		{"graduated just below 100", graduated(graduatedTiers), "99.999", "9.9999"},
		{"graduated at 100: second tier not reached", graduated(graduatedTiers), "100", "10"},
		{"graduated just above 100: second tier's flat", graduated(graduatedTiers), "100.001", "11.00005"},
		{"graduated at 500", graduated(graduatedTiers), "500", "31"},
		{"graduated just above 500", graduated(graduatedTiers), "500.5", "31.005"},
		{"graduated 10000", graduated(graduatedTiers), "10000", "126"},
		{"graduated negative units price as 0", graduated(graduatedTiers), "-5", "0"},
		{"graduated first tier flat, zero units", graduated("0..100 @0 +5 | 100.. @1"), "0", "0"},
		{"graduated first tier flat, any usage", graduated("0..100 @0 +5 | 100.. @1"), "0.001", "5"},
		{"graduated first tier flat, at its bound", graduated("0..100 @0 +5 | 100.. @1"), "100", "5"},
		{"graduated first tier flat, beyond", graduated("0..100 @0 +5 | 100.. @1"), "101", "6"},
		{"graduated single unbounded tier", graduated("0.. @0.2 +1"), "7.5", "2.5"},

		// volume: every unit at the tier holding the total.
		{"volume zero", volume(volumeTiers), "0", "0"},
		{"volume just below 100", volume(volumeTiers), "99.999", "9.9999"},
		{"volume at 100: first tier", volume(volumeTiers), "100", "10"},
		{"volume just above 100: all at 0.05 plus flat", volume(volumeTiers), "100.001", "6.00005"},
		{"volume at 500", volume(volumeTiers), "500", "26"},
		{"volume just above 500", volume(volumeTiers), "500.5", "7.005"},
		{"volume 10000", volume(volumeTiers), "10000", "102"},
		{"volume negative units price as 0", volume(volumeTiers), "-1", "0"},
		{"volume first tier flat, zero units", volume("0..10 @1 +3 | 10.. @0.5"), "0", "0"},
		{"volume first tier flat, fractional units", volume("0..10 @1 +3 | 10.. @0.5"), "0.5", "3.5"},

		// package: 5 per started package of 10, after free units.
		{"package zero", packaged("5", "10", ""), "0", "0"},
		{"package one unit starts a package", packaged("5", "10", ""), "1", "5"},
		{"package exactly one package", packaged("5", "10", ""), "10", "5"},
		{"package fractional units start the next package", packaged("5", "10", ""), "10.5", "10"},
		{"package two packages", packaged("5", "10", "0"), "20", "10"},
		{"package a hair over two packages", packaged("5", "10", "0"), "20.0001", "15"},
		{"package beyond Div's 16 digits", packaged("5", "10", ""), "10.00000000000000000001", "10"},
		{"package within free units", packaged("5", "10", "100"), "50", "0"},
		{"package at free units", packaged("5", "10", "100"), "100", "0"},
		{"package just above free units", packaged("5", "10", "100"), "100.5", "5"},
		{"package free units plus one package", packaged("5", "10", "100"), "110", "5"},
		{"package free units plus a started second", packaged("5", "10", "100"), "110.01", "10"},
		{"package fractional size", packaged("1", "0.5", ""), "1.2", "3"},
		{"package fractional free units", packaged("2", "10", "0.5"), "10.5", "2"},
		{"package negative units price as 0", packaged("5", "10", ""), "-30", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rating.ChargeAmount(tt.charge, dec(tt.units))
			if err != nil {
				t.Fatalf("ChargeAmount(%s): %v", tt.units, err)
			}
			if !got.Equal(dec(tt.want)) {
				t.Errorf("ChargeAmount(%s) = %s, want %s", tt.units, got, tt.want)
			}
		})
	}
}

// Lago writes tiers 0-100, 101-500, 501-; Tally reads a range's lower bound
// from the previous range's to_value, so that notation and the continuous
// one price every quantity identically, including those between 100 and
// 101 that the integer notation seems to leave out.
func TestChargeAmountIntegerNotationMatchesContinuous(t *testing.T) {
	pairs := []struct {
		name                   string
		continuous, integerNot schemas.Charge
	}{
		{"graduated", graduated(graduatedTiers), graduated(graduatedTiersInteger)},
		{"volume", volume(volumeTiers), volume(volumeTiersInteger)},
	}
	units := []string{"0", "0.5", "99.999", "100", "100.001", "100.5", "101", "101.5", "500", "500.5", "501", "10000"}
	for _, pair := range pairs {
		for _, u := range units {
			want, err := rating.ChargeAmount(pair.continuous, dec(u))
			if err != nil {
				t.Fatal(err)
			}
			got, err := rating.ChargeAmount(pair.integerNot, dec(u))
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(want) {
				t.Errorf("%s %s units: integer notation %s, continuous %s", pair.name, u, got, want)
			}
		}
	}
}

// Every charge model has a rule: a model added to schemas without one
// fails here instead of being priced as something else.
func TestChargeAmountCoversEveryModel(t *testing.T) {
	samples := map[schemas.ChargeModel]struct {
		charge schemas.Charge
		want   string // for 150 units
	}{
		schemas.ChargeStandard:  {standard("0.5"), "75"},
		schemas.ChargeGraduated: {graduated(graduatedTiers), "13.5"},
		schemas.ChargeVolume:    {volume(volumeTiers), "8.5"},
		schemas.ChargePackage:   {packaged("5", "100", "20"), "10"},
	}
	for _, model := range schemas.ChargeModels {
		sample, ok := samples[model]
		if !ok {
			t.Errorf("charge model %q has no sample here: add one with its expected amount", model)
			continue
		}
		got, err := rating.ChargeAmount(sample.charge, dec("150"))
		if err != nil {
			t.Errorf("%s: %v", model, err)
			continue
		}
		if !got.Equal(dec(sample.want)) {
			t.Errorf("%s: 150 units = %s, want %s", model, got, sample.want)
		}
	}
}

func TestChargeAmountErrors(t *testing.T) {
	withModel := func(model schemas.ChargeModel, c schemas.Charge) schemas.Charge {
		c.ChargeModel = model
		return c
	}
	tests := []struct {
		name   string
		charge schemas.Charge
		want   error
	}{
		{"unknown model", withModel("percentage", standard("1")), rating.ErrUnknownChargeModel},
		{"empty model is not standard", withModel("", standard("1")), rating.ErrUnknownChargeModel},
		{"standard without amount", schemas.Charge{ChargeModel: schemas.ChargeStandard}, rating.ErrInvalidCharge},
		{"graduated without ranges", schemas.Charge{ChargeModel: schemas.ChargeGraduated}, rating.ErrInvalidCharge},
		{"graduated with volume ranges only", withModel(schemas.ChargeGraduated, volume(volumeTiers)), rating.ErrInvalidCharge},
		{"graduated bounded last range", graduated("0..100 @1 | 100..200 @2"), rating.ErrInvalidCharge},
		{"graduated unbounded middle range", graduated("0..100 @1 | 100.. @2 | 200.. @3"), rating.ErrInvalidCharge},
		{"graduated range not above the previous", graduated("0..100 @1 | 100..100 @2 | 100.. @3"), rating.ErrInvalidCharge},
		{"graduated ranges going down", graduated("0..100 @1 | 100..50 @2 | 50.. @3"), rating.ErrInvalidCharge},
		{"graduated first range ending at 0", graduated("0..0 @1 | 0.. @2"), rating.ErrInvalidCharge},
		{"volume without ranges", schemas.Charge{ChargeModel: schemas.ChargeVolume}, rating.ErrInvalidCharge},
		{"volume bounded last range", volume("0..100 @1"), rating.ErrInvalidCharge},
		{"package without amount", schemas.Charge{ChargeModel: schemas.ChargePackage, Properties: schemas.ChargeProperties{PackageSize: decPtr("10")}}, rating.ErrInvalidCharge},
		{"package without size", schemas.Charge{ChargeModel: schemas.ChargePackage, Properties: schemas.ChargeProperties{Amount: decPtr("1")}}, rating.ErrInvalidCharge},
		{"package size 0", packaged("1", "0", ""), rating.ErrInvalidCharge},
		{"package negative size", packaged("1", "-10", ""), rating.ErrInvalidCharge},
		{"package negative free units", packaged("1", "10", "-1"), rating.ErrInvalidCharge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// 0 units too: an invalid charge is an error even when unused.
			for _, units := range []decimal.Decimal{decimal.Zero, dec("150")} {
				got, err := rating.ChargeAmount(tt.charge, units)
				if !errors.Is(err, tt.want) {
					t.Errorf("ChargeAmount(%s) = %s, %v; want error %v", units, got, err, tt.want)
				}
			}
		})
	}
}

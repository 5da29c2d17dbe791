package aggregator

import (
	"slices"
	"testing"
)

func TestEngineArgs(t *testing.T) {
	for _, c := range []struct {
		full string
		want []string
	}{
		{"Distributed(tally, db, readings_local, cityHash64(org_id, customer_id))",
			[]string{"tally", "db", "readings_local", "cityHash64(org_id, customer_id)"}},
		{"Distributed('tally', 'db', 't_local')", []string{"'tally'", "'db'", "'t_local'"}},
		{"Distributed(c, db, t, cityHash64(concat(a, ',)'), b)) SETTINGS x = 1",
			[]string{"c", "db", "t", "cityHash64(concat(a, ',)'), b)"}},
	} {
		got, err := engineArgs(c.full)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("engineArgs(%q) = %q, %v; want %q", c.full, got, err, c.want)
		}
	}
	for _, full := range []string{"Distributed", "Distributed(a, b"} {
		if got, err := engineArgs(full); err == nil {
			t.Errorf("engineArgs(%q) = %q, want an error", full, got)
		}
	}
}

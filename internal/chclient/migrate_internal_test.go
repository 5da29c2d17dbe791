package chclient

import (
	"regexp"
	"testing"
)

func TestInsertPattern(t *testing.T) {
	re := regexp.MustCompile(insertPattern("tally", "readings"))
	for query, want := range map[string]bool{
		"INSERT INTO readings (org_id, meter_key) VALUES":                               true,
		"insert into readings(org_id)":                                                  true,
		"  INSERT INTO tally.readings FORMAT Native":                                    true,
		"INSERT INTO `tally`.`readings` (a)":                                            true,
		"-- a comment\nINSERT INTO readings (a)":                                        true,
		"/* a\ncomment */ INSERT INTO readings (a)":                                     true,
		"INSERT INTO readings":                                                          true,
		"INSERT INTO readings_by_day (org_id)":                                          false,
		"INSERT INTO other.readings (org_id)":                                           false,
		"INSERT INTO tally.readings_by_customer (a)":                                    false,
		"SELECT * FROM system.processes WHERE match(query, 'INSERT INTO readings')":     false,
		"-- 0017\nINSERT INTO tally.readings_by_day (a)\nSELECT a\nFROM tally.readings": false,
	} {
		if got := re.MatchString(query); got != want {
			t.Errorf("%q: matched %v, want %v", query, got, want)
		}
	}
}

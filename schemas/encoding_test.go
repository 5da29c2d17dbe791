package schemas_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/schemas"
)

func TestRecordRoundTrip(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	for _, tc := range []struct {
		name   string
		record schemas.Record
	}{
		{
			name: "every field",
			record: schemas.Record{
				OrgID: "org_1",
				Event: schemas.Event{
					ID: "evt-1", Type: "api_call", CustomerID: "cust-1", Source: "svc",
					Time:       time.Date(2026, 3, 15, 11, 59, 59, 123456789, time.UTC),
					Properties: json.RawMessage(`{"tokens":0.1,"big":123456789012345678901234567890.123456789012,"model":"gpt"}`),
				},
				IngestedAt: time.Date(2026, 3, 15, 12, 0, 0, 1, time.UTC),
			},
		},
		{
			name: "no source, no properties",
			record: schemas.Record{
				OrgID:      "org_1",
				Event:      schemas.Event{ID: "e", Type: "t", CustomerID: "c", Time: testNow},
				IngestedAt: testNow,
			},
		},
		{
			name: "properties bytes kept exactly: HTML and line separators",
			record: schemas.Record{
				OrgID: "org_1",
				Event: schemas.Event{ID: "<id>", Type: "a&b", CustomerID: "c", Time: testNow,
					Properties: json.RawMessage("{\"html\":\"<b>&amp;</b>\",\"ls\":\"a\u2028b\u2029c\",\"esc\":\"\\u003c\\n\"}")},
				IngestedAt: testNow,
			},
		},
		{
			name: "unicode and a slash in the customer id",
			record: schemas.Record{
				OrgID:      "org_1",
				Event:      schemas.Event{ID: "😀", Type: "日本", CustomerID: "team/alice", Time: testNow},
				IngestedAt: testNow,
			},
		},
		{
			name: "times in another zone come back in UTC",
			record: schemas.Record{
				OrgID:      "org_1",
				Event:      schemas.Event{ID: "e", Type: "t", CustomerID: "c", Time: testNow.In(paris)},
				IngestedAt: testNow.Add(time.Second).In(paris),
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, value, err := schemas.EncodeRecord(tc.record)
			if err != nil {
				t.Fatal(err)
			}
			wantKey := tc.record.OrgID + "/" + tc.record.Event.CustomerID
			if string(key) != wantKey {
				t.Errorf("key = %q, want %q", key, wantKey)
			}
			if org, customer, _ := strings.Cut(string(key), "/"); org != tc.record.OrgID || customer != tc.record.Event.CustomerID {
				t.Errorf("key %q splits at its first '/' into %q and %q", key, org, customer)
			}
			if !bytes.Equal(key, schemas.RecordKey(tc.record.OrgID, tc.record.Event.CustomerID)) {
				t.Errorf("EncodeRecord key %q differs from RecordKey", key)
			}
			got, err := schemas.DecodeRecord(value)
			if err != nil {
				t.Fatalf("DecodeRecord(%s): %v", value, err)
			}
			if got.OrgID != tc.record.OrgID {
				t.Errorf("org = %q, want %q", got.OrgID, tc.record.OrgID)
			}
			want := tc.record.Event
			want.Time = want.Time.UTC()
			assertEventEqual(t, got.Event, want)
			if !got.IngestedAt.Equal(tc.record.IngestedAt) || got.IngestedAt.Location() != time.UTC {
				t.Errorf("ingested_at = %v, want %v in UTC", got.IngestedAt, tc.record.IngestedAt)
			}
		})
	}
}

// TestRecordValueLayout pins the documented value layout: other tools
// (and records already in the topic) read it.
func TestRecordValueLayout(t *testing.T) {
	_, value, err := schemas.EncodeRecord(schemas.Record{
		OrgID: "org_1",
		Event: schemas.Event{ID: "e1", Type: "t", CustomerID: "c1", Source: "s",
			Time:       time.Date(2026, 3, 15, 11, 0, 0, 500, time.FixedZone("X", 3600)),
			Properties: json.RawMessage(`{"a":1}`)},
		IngestedAt: testNow,
	})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"v":1,"org_id":"org_1","id":"e1","type":"t","customer_id":"c1","time":"2026-03-15T10:00:00.0000005Z","source":"s","properties":{"a":1},"ingested_at":"2026-03-15T12:00:00Z"}`
	if string(value) != want {
		t.Errorf("value =\n%s\nwant\n%s", value, want)
	}
	if schemas.RecordVersion != 1 || schemas.RecordContentType != "application/vnd.tally.event.v1+json" {
		t.Errorf("record version %d / content type %q changed: records in the topic are version 1",
			schemas.RecordVersion, schemas.RecordContentType)
	}
	_, value, err = schemas.EncodeRecord(schemas.Record{OrgID: "o", Event: schemas.Event{ID: "e", Type: "t", CustomerID: "c", Time: testNow}})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(value, []byte(`"source"`)) || bytes.Contains(value, []byte(`"properties"`)) {
		t.Errorf("empty source and properties should be left out: %s", value)
	}
}

// TestRecordFromParsedEvent is the ingest -> Kafka -> aggregator path: what
// ParseEvent accepted is exactly what DecodeRecord returns.
func TestRecordFromParsedEvent(t *testing.T) {
	raw := event(map[string]string{
		"time":       `"2026-03-15T12:04:59.999999999+00:00"`,
		"source":     `"<svc>"`,
		"properties": `{"q": "a<b && c>d", "n": 0.30000000000000000001, "u": "\u2028"}`,
	})
	ev, err := schemas.ParseEvent(raw, schemas.EventRules{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	_, value, err := schemas.EncodeRecord(schemas.Record{OrgID: "org", Event: ev, IngestedAt: testNow})
	if err != nil {
		t.Fatal(err)
	}
	got, err := schemas.DecodeRecord(value)
	if err != nil {
		t.Fatal(err)
	}
	assertEventEqual(t, got.Event, ev)
}

func TestEncodeRecordInvalidProperties(t *testing.T) {
	_, _, err := schemas.EncodeRecord(schemas.Record{OrgID: "o",
		Event: schemas.Event{ID: "e", Type: "t", CustomerID: "c", Time: testNow, Properties: json.RawMessage(`{"a":`)}})
	if err == nil {
		t.Error("EncodeRecord with properties that are not JSON succeeded")
	}
}

func TestDecodeRecordMalformed(t *testing.T) {
	valid := map[string]string{
		"v": `1`, "org_id": `"org"`, "id": `"e"`, "type": `"t"`, "customer_id": `"c"`,
		"time": `"2026-03-15T12:00:00Z"`, "ingested_at": `"2026-03-15T12:00:00Z"`,
	}
	record := func(overrides map[string]string) []byte {
		var parts []string
		for _, k := range []string{"v", "org_id", "id", "type", "customer_id", "time", "source", "properties", "ingested_at"} {
			v, ok := valid[k]
			if o, overridden := overrides[k]; overridden {
				v, ok = o, o != absentField
			}
			if ok {
				parts = append(parts, quoted(k)+":"+v)
			}
		}
		return []byte("{" + strings.Join(parts, ",") + "}")
	}
	if _, err := schemas.DecodeRecord(record(nil)); err != nil {
		t.Fatalf("the valid record of this test does not decode: %v", err)
	}
	for _, tc := range []struct {
		name  string
		value []byte
		want  string // in the error text
	}{
		{"empty", []byte(``), ""},
		{"not JSON", []byte(`not json`), ""},
		{"truncated", record(nil)[:40], ""},
		{"trailing data", append(record(nil), '{'), ""},
		{"array", []byte(`[1]`), ""},
		{"null", []byte(`null`), "version 0"},
		{"empty object", []byte(`{}`), "version 0"},
		{"version missing", record(map[string]string{"v": absentField}), "version 0"},
		{"version 2", record(map[string]string{"v": `2`}), "version 2"},
		{"version 0", record(map[string]string{"v": `0`}), "version 0"},
		{"version as a string", record(map[string]string{"v": `"1"`}), ""},
		{"version fractional", record(map[string]string{"v": `1.5`}), ""},
		{"org_id missing", record(map[string]string{"org_id": absentField}), "org_id"},
		{"org_id empty", record(map[string]string{"org_id": `""`}), "org_id"},
		{"org_id a number", record(map[string]string{"org_id": `1`}), ""},
		{"id missing", record(map[string]string{"id": absentField}), "id"},
		{"type missing", record(map[string]string{"type": absentField}), "type"},
		{"customer_id missing", record(map[string]string{"customer_id": absentField}), "customer_id"},
		{"customer_id null", record(map[string]string{"customer_id": `null`}), "customer_id"},
		{"several fields missing", record(map[string]string{"id": absentField, "type": `""`, "org_id": `""`}), "missing org_id, id, type"},
		{"time missing", record(map[string]string{"time": absentField}), "time"},
		{"time null", record(map[string]string{"time": `null`}), "time"},
		{"time empty", record(map[string]string{"time": `""`}), ""},
		{"time not RFC 3339", record(map[string]string{"time": `"2026-03-15 12:00"`}), ""},
		{"time a number", record(map[string]string{"time": `1773576000`}), ""},
		{"source an object", record(map[string]string{"source": `{}`}), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := schemas.DecodeRecord(tc.value)
			if err == nil {
				t.Fatalf("DecodeRecord(%s) = %+v, want an error", tc.value, r)
			}
			if !errors.Is(err, schemas.ErrRecord) {
				t.Errorf("DecodeRecord(%s) error %q does not wrap ErrRecord", tc.value, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("DecodeRecord(%s) error %q should mention %q", tc.value, err, tc.want)
			}
		})
	}
}

// TestDecodeRecordTolerates pins what DecodeRecord accepts beyond what
// EncodeRecord writes: fields a later version-1 writer may add, and records
// without ingested_at.
func TestDecodeRecordTolerates(t *testing.T) {
	for _, value := range []string{
		`{"v":1,"org_id":"o","id":"e","type":"t","customer_id":"c","time":"2026-03-15T12:00:00Z"}`,
		`{"v":1,"org_id":"o","id":"e","type":"t","customer_id":"c","time":"2026-03-15T12:00:00Z","partition_hint":3}`,
	} {
		r, err := schemas.DecodeRecord([]byte(value))
		if err != nil {
			t.Errorf("DecodeRecord(%s): %v", value, err)
			continue
		}
		if r.OrgID != "o" || r.Event.ID != "e" || !r.Event.Time.Equal(testNow) {
			t.Errorf("DecodeRecord(%s) = %+v", value, r)
		}
	}
}

// TestRecordBuilder adds events to one builder, from a buffer too small
// for them, and checks every record once all are written: each is what
// ParseEvent and EncodeRecord make of its event, and none was overwritten
// by a later one or shares memory with the events read.
func TestRecordBuilder(t *testing.T) {
	rules := schemas.EventRules{Now: testNow}
	var raws [][]byte
	for i := range 300 {
		props := fmt.Sprintf(`{ "n" : %d , "s" : "\u00e9<&>\u2028" , "a" : [ 1 , { "b" : null } ] }`, i)
		if i%3 == 0 {
			props = fmt.Sprintf(`{"n":%d,"s":"%s"}`, i, strings.Repeat("x", i))
		}
		raws = append(raws, fmt.Appendf(nil, `{"id":"e\"%d","type":"t","customer_id":"c%d","source":"s\u2029","time":"2026-03-15T11:00:00.%03d+02:00","properties":%s}`,
			i, i%7, i, props))
	}
	raws = append(raws, []byte(`{"id":"bad"}`), []byte(`{"id":"e","type":"t","customer_id":"c","properties":{"n":1e26}}`))
	b := schemas.NewRecordBuilder("org_1", testNow.Add(time.Microsecond), rules, 1, 100)
	type record struct{ key, value []byte }
	var got, want []record
	for _, raw := range raws {
		key, value, parseErr, encodeErr := b.Add(raw)
		if encodeErr != nil {
			t.Fatalf("encoding %s: %v", raw, encodeErr)
		}
		ev, err := schemas.ParseEvent(raw, rules)
		if (err == nil) != (parseErr == nil) || (err != nil && err.Error() != parseErr.Error()) {
			t.Fatalf("Add(%s): %v, ParseEvent: %v", raw, parseErr, err)
		}
		got = append(got, record{key, value})
		if err != nil {
			want = append(want, record{})
			continue
		}
		wantKey, wantValue, err := schemas.EncodeRecord(schemas.Record{OrgID: "org_1", Event: ev, IngestedAt: testNow.Add(time.Microsecond)})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, record{wantKey, wantValue})
	}
	for _, raw := range raws {
		clear(raw) // records must not share the events' memory
	}
	for i := range raws {
		if !bytes.Equal(got[i].key, want[i].key) || !bytes.Equal(got[i].value, want[i].value) || (got[i].key == nil) != (want[i].key == nil) {
			t.Errorf("record %d:\n key %q value %s\nwant key %q value %s", i, got[i].key, got[i].value, want[i].key, want[i].value)
		}
	}
	if _, err := schemas.DecodeRecord(got[299].value); err != nil {
		t.Error(err)
	}
}

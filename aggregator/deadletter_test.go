package aggregator

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/schemas"
)

// TestDeadLetters sends events that cannot be metered next to good ones:
// the bad ones land in dead_letters and on the dead-letter topic with their
// reason, the good ones are metered.
func TestDeadLetters(t *testing.T) {
	e := newEnv(t, 1)
	e.createMeter(testOrg, `{"key":"spend","event_type":"charge","aggregation":"SUM","value_property":"amount",
		"group_by":{"region":"region"}}`)
	e.createMeter(testOrg, `{"key":"charges","event_type":"charge","aggregation":"COUNT"}`)
	e.produce(
		event("c1", "good1", "charge", t0, `{"amount":5,"region":"eu"}`),
		event("c1", "missing", "charge", t0, `{"region":"eu"}`),
		event("c1", "nan", "charge", t0, `{"amount":"abc","region":"eu"}`),
		event("c1", "precise", "charge", t0, `{"amount":0.0000000000001,"region":"eu"}`),
		event("c1", "object", "charge", t0, `{"amount":1,"region":{"name":"eu"}}`),
	)
	e.produceMessages(kafka.Message{Key: []byte("acme/c1"), Value: []byte("not json at all")})
	e.produce(event("c1", "good2", "charge", t0, `{"amount":"2.25","region":"us"}`))

	run := e.start(withGroup(testConfig(), t))
	e.waitCommitted(groupID(t))

	sec := t0.Truncate(time.Second)
	assertReadings(t, e.readings("spend"),
		reading{Customer: "c1", EventID: "good1", Time: sec, Value: "5", GroupKeys: []string{"region"}, GroupValues: []string{"eu"}},
		reading{Customer: "c1", EventID: "good2", Time: sec, Value: "2.25", GroupKeys: []string{"region"}, GroupValues: []string{"us"}},
	)
	// COUNT needs no value and has no group_by: it meters the events the
	// spend meter dead-letters (all but the unreadable record).
	if n := len(e.readings("charges")); n != 6 {
		t.Errorf("charges readings: %d, want 6", n)
	}

	want := map[string]string{ // event id -> reason
		"missing": schemas.ReasonValueMissing,
		"nan":     schemas.ReasonValueNotNumber,
		"precise": schemas.ReasonValueTooPrecise,
		"object":  schemas.ReasonGroupNotScalar,
		"":        schemas.ReasonRecordMalformed,
	}
	rows, err := e.conn.Query(e.ctx, `SELECT org_id, customer_id, event_id, meter_key, reason, message, payload, kafka_offset
		FROM dead_letters FINAL ORDER BY kafka_offset`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for rows.Next() {
		var org, customer, id, meter, reason, message, payload string
		var offset int64
		if err := rows.Scan(&org, &customer, &id, &meter, &reason, &message, &payload, &offset); err != nil {
			t.Fatal(err)
		}
		got[id] = reason
		if message == "" || payload == "" {
			t.Errorf("dead letter %q (%s): empty message or payload", id, reason)
		}
		if id == "" && (org != "" || meter != "" || offset != 5 || payload != "not json at all") {
			t.Errorf("malformed record: org %q meter %q offset %d payload %q", org, meter, offset, payload)
		}
		if id != "" && (org != testOrg || customer != "c1" || meter != "spend") {
			t.Errorf("dead letter %q: org %q customer %q meter %q", id, org, customer, meter)
		}
	}
	rows.Close()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dead letters by event id:\n got %v\nwant %v", got, want)
	}

	// The topic carries the same dead letters with the original records.
	topic := readDeadLetters(t, e, len(want))
	for _, dl := range topic {
		if want[dl.EventID] != dl.Reason || dl.Message == "" {
			t.Errorf("dead-letter record %+v: reason %q, want %q", dl, dl.Reason, want[dl.EventID])
		}
		switch dl.EventID {
		case "":
			if string(dl.RecordBase64) != "not json at all" || dl.Offset != 5 {
				t.Errorf("malformed record on the topic: %+v", dl)
			}
		default:
			rec, err := schemas.DecodeRecord(dl.Record)
			if err != nil || rec.Event.ID != dl.EventID {
				t.Errorf("dead letter %q: record %s does not decode to the event: %v", dl.EventID, dl.Record, err)
			}
		}
	}

	for outcome, want := range map[string]float64{outcomeMetered: 2, outcomeDeadLettered: 5} {
		if got := metricValue(t, run.reg, "tally_aggregator_events_total", map[string]string{"outcome": outcome}); got != want {
			t.Errorf("events_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
	if got := metricValue(t, run.reg, "tally_aggregator_dead_letters_total", map[string]string{"reason": schemas.ReasonValueTooPrecise}); got != 1 {
		t.Errorf("dead_letters_total{reason=value_too_precise} = %v, want 1", got)
	}
}

func readDeadLetters(t *testing.T, e *env, n int) []DeadLetter {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.kafka.Brokers, Topic: testDeadLetter, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	var out []DeadLetter
	for len(out) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("read dead-letter topic after %d of %d: %v", len(out), n, err)
		}
		var dl DeadLetter
		if err := json.Unmarshal(m.Value, &dl); err != nil {
			t.Fatalf("dead-letter record %s: %v", m.Value, err)
		}
		out = append(out, dl)
	}
	return out
}

// TestEncodeDeadLetter: the original record rides along as JSON, as base64
// when it is not JSON, and not at all when it would make the message too
// large for the broker (the table keeps it).
func TestEncodeDeadLetter(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		check   func(DeadLetter) bool
	}{
		{"json", []byte(`{"v":1}`), func(d DeadLetter) bool { return string(d.Record) == `{"v":1}` && d.RecordBase64 == nil }},
		{"bytes", []byte{0xff, 0x00, 'x'}, func(d DeadLetter) bool { return d.Record == nil && string(d.RecordBase64) == "\xff\x00x" }},
		{"huge", []byte(`"` + strings.Repeat("x", maxDeadLetterRecord) + `"`), func(d DeadLetter) bool {
			return d.RecordOmitted && d.Record == nil && d.RecordBase64 == nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeDeadLetter(DeadLetterRow{OrgID: "o", EventID: "e", Reason: "r", Message: "m", Payload: tc.payload,
				Position: Position{Partition: 2, Offset: 7}})
			if err != nil {
				t.Fatal(err)
			}
			var d DeadLetter
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatal(err)
			}
			if !tc.check(d) || d.Partition != 2 || d.Offset != 7 || d.Reason != "r" {
				t.Errorf("encoded %s", b)
			}
		})
	}
}

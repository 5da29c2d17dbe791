package aggregator

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/schemas"
)

// TestPoisonEventsDoNotStallThePartition: events whose dead letters
// would once have exceeded the dead-letter writer's 1 MiB message limit
// (so that the publish failed on every retry, the batch never committed
// and the partition stopped) are dead-lettered within the bounds, and the
// good event behind them is metered.
//
//   - a number of about a million digits in an event just under the
//     record limit: the message quoted the whole number (ingest now
//     refuses such numbers, but records from before, or from another
//     producer, still reach the aggregator);
//   - 300 KB of '<' in a property: the record copied into the dead letter
//     was HTML-escaped by json.Marshal, six bytes for each.
//
// (Before the fix: "timed out waiting for group ... to commit 3 records".)
func TestPoisonEventsDoNotStallThePartition(t *testing.T) {
	e := newEnv(t, 1)
	// The longest meter key: the dead letter names it, the record does not.
	meterKey := "spend" + strings.Repeat("x", 58)
	e.createMeter(testOrg, `{"key":"`+meterKey+`","event_type":"charge","aggregation":"SUM","value_property":"amount"}`)

	huge := hugeNumberEvent(t, "huge", 1<<20-100)
	escaped := event("c1", "escaped", "charge", t0, `{"note":"`+strings.Repeat("<", 300_000)+`"}`)
	good := event("c1", "good", "charge", t0, `{"amount":7}`)
	e.produce(huge)
	e.produce(escaped)
	e.produce(good)

	run := e.start(withGroup(testConfig(), t))
	e.waitCommitted(groupID(t))

	if got := e.decimal(`SELECT sum(value) FROM readings FINAL WHERE meter_key = ?`, meterKey); got.String() != "7" {
		t.Errorf("sum = %s, want 7 (the good event)", got)
	}
	// A number longer than schemas.MaxNumberLen is not read at all (it
	// would cost a second of CPU): not a number, quoted cut in the message.
	want := map[string]string{"huge": schemas.ReasonValueNotNumber, "escaped": schemas.ReasonValueMissing}
	for id, reason := range want {
		if n := e.count(`SELECT count() FROM dead_letters FINAL WHERE event_id = ? AND reason = ?`, id, reason); n != 1 {
			t.Errorf("dead letters of %q with reason %s: %d, want 1", id, reason, n)
		}
		var msg string
		if err := e.conn.QueryRow(e.ctx, `SELECT any(message) FROM dead_letters WHERE event_id = ?`, id).Scan(&msg); err != nil {
			t.Fatal(err)
		}
		if len(msg) > maxDeadLetterMessage {
			t.Errorf("dead letter %q: message of %d bytes, want at most %d", id, len(msg), maxDeadLetterMessage)
		}
	}
	for _, dl := range readDeadLetters(t, e, len(want)) {
		if want[dl.EventID] != dl.Reason {
			t.Errorf("dead-letter record %q: reason %q, want %q", dl.EventID, dl.Reason, want[dl.EventID])
		}
	}
	if got := metricValue(t, run.reg, "tally_aggregator_events_total", map[string]string{"outcome": outcomeMetered}); got != 1 {
		t.Errorf("events_total{outcome=metered} = %v, want 1", got)
	}
}

// hugeNumberEvent returns an event whose amount is a number of as many
// digits as fit in a record of total bytes (key and value).
func hugeNumberEvent(t testing.TB, id string, total int) schemas.Record {
	t.Helper()
	rec := event("c1", id, "charge", t0, `{"amount":1}`)
	key, value, err := schemas.EncodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	digits := total - len(key) - len(value) + 1
	rec.Event.Properties = json.RawMessage(`{"amount":1` + strings.Repeat("0", digits-1) + `}`)
	return rec
}

// pathologicalRow is a dead letter of an event with every field at
// several times any limit: ids and key of 100 KB of control characters
// (six bytes each in JSON), a message quoting a megabyte, and a record of
// a megabyte of '<' (six bytes each once HTML-escaped).
func pathologicalRow(payload []byte) DeadLetterRow {
	ctl := strings.Repeat("\x01", 100_000)
	return DeadLetterRow{
		OrgID: ctl, CustomerID: ctl, EventID: ctl, EventType: ctl, MeterKey: ctl, Reason: ctl,
		Message: strings.Repeat("\x00", 1<<20), Payload: payload, Key: []byte(ctl),
	}
}

// TestDeadLetterAlwaysFits: whatever the row, the encoded dead letter and
// its key stay within maxDeadLetterValue and maxDeadLetterKey, which leave
// room below the writer's BatchBytes and Kafka's default message limit.
func TestDeadLetterAlwaysFits(t *testing.T) {
	if maxDeadLetterValue+maxDeadLetterKey+1024 > deadLetterBatchBytes {
		t.Fatalf("bounds %d + %d leave no room below the writer's %d", maxDeadLetterValue, maxDeadLetterKey, deadLetterBatchBytes)
	}
	for name, payload := range map[string][]byte{
		"json just under the copy limit":  []byte(`"` + strings.Repeat("<", maxDeadLetterRecord-2) + `"`),
		"json over it":                    []byte(`"` + strings.Repeat("<", 1<<20) + `"`),
		"bytes just under the copy limit": append([]byte{0xff}, make([]byte, maxDeadLetterRecordBytes-1)...),
		"bytes over it":                   append([]byte{0xff}, make([]byte, 1<<20)...),
	} {
		t.Run(name, func(t *testing.T) {
			row := pathologicalRow(payload)
			value, err := encodeDeadLetter(row)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("dead letter of %d bytes", len(value))
			if len(value) > maxDeadLetterValue {
				t.Errorf("dead letter of %d bytes, want at most %d", len(value), maxDeadLetterValue)
			}
			if key := deadLetterKey(row); len(key) > maxDeadLetterKey {
				t.Errorf("key of %d bytes, want at most %d", len(key), maxDeadLetterKey)
			}
			msg := kafka.Message{Key: deadLetterKey(row), Value: value}
			if n := len(msg.Key) + len(msg.Value); n > deadLetterBatchBytes-1024 {
				t.Errorf("message of %d bytes", n)
			}
			var dl DeadLetter
			if err := json.Unmarshal(value, &dl); err != nil {
				t.Fatalf("dead letter does not decode: %v", err)
			}
			if !strings.Contains(dl.Message, "bytes)") {
				t.Errorf("truncated message does not say so: %q", dl.Message[len(dl.Message)-40:])
			}
			if len(payload) <= maxDeadLetterRecordBytes && dl.RecordOmitted {
				t.Errorf("a record of %d bytes was omitted", len(payload))
			}
			if len(payload) > maxDeadLetterRecord && (!dl.RecordOmitted || dl.RecordBytes != len(payload)) {
				t.Errorf("a record of %d bytes: omitted %v, record_bytes %d", len(payload), dl.RecordOmitted, dl.RecordBytes)
			}
		})
	}
	// The table's row keeps the whole payload up to its own bound, and the
	// same message bound.
	row := pathologicalRow([]byte(strings.Repeat("x", maxDeadLetterPayload+1))).bounded()
	if len(row.Message) > maxDeadLetterMessage || len(row.CustomerID) > maxDeadLetterField || len(row.Payload) != maxDeadLetterPayload {
		t.Errorf("bounded row: message %d, customer_id %d, payload %d bytes", len(row.Message), len(row.CustomerID), len(row.Payload))
	}
}

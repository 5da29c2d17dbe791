package aggregator

import (
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tally-oss/tally/schemas"
)

// TestDeadLetterTopicRefuses: a dead-letter topic whose max.message.bytes
// is below a dead letter (a topic configured smaller than Kafka's default)
// refuses it on every attempt. The aggregator publishes a shortened copy
// instead, counts it as parked, and the partition goes on.
// (Before the fix: "timed out waiting for group ... to commit 2 records".)
func TestDeadLetterTopicRefuses(t *testing.T) {
	e := newEnv(t, 1)
	client := &kafka.Client{Addr: kafka.TCP(e.kafka.Brokers...), Timeout: 10 * time.Second}
	resp, err := client.AlterConfigs(e.ctx, &kafka.AlterConfigsRequest{Resources: []kafka.AlterConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: testDeadLetter,
		Configs: []kafka.AlterConfigRequestConfig{{Name: "max.message.bytes", Value: "4000"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range resp.Errors {
		if e != nil {
			t.Fatal(e)
		}
	}
	e.createMeter(testOrg, `{"key":"spend","event_type":"charge","aggregation":"SUM","value_property":"amount"}`)
	e.produce(
		event("c1", "wordy", "charge", t0, `{"note":"`+strings.Repeat("n", 10_000)+`"}`),
		event("c1", "good", "charge", t0, `{"amount":3}`),
	)
	run := e.start(withGroup(testConfig(), t))
	e.waitCommitted(groupID(t))

	if got := e.decimal(`SELECT sum(value) FROM readings FINAL WHERE meter_key = 'spend'`); got.String() != "3" {
		t.Errorf("sum = %s, want 3", got)
	}
	if n := e.count(`SELECT count() FROM dead_letters FINAL WHERE event_id = 'wordy' AND reason = ? AND length(payload) > 10000`,
		schemas.ReasonValueMissing); n != 1 {
		t.Errorf("the table holds %d whole dead letters of the wordy event, want 1", n)
	}
	dl := readDeadLetters(t, e, 1)[0]
	if dl.EventID != "wordy" || dl.Reason != schemas.ReasonValueMissing || !strings.Contains(dl.Message, "shortened") || dl.Record != nil {
		t.Errorf("published %+v, want the shortened dead letter of the wordy event", dl)
	}
	if got := metricValue(t, run.reg, "tally_aggregator_parked_records_total", map[string]string{"reason": parkedUnpublished}); got != 1 {
		t.Errorf("parked_records_total{reason=unpublishable_dead_letter} = %v, want 1", got)
	}
}

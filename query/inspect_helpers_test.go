package query

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// deadLetterRow is one row of the dead_letters table, as the aggregator
// writes it (aggregator/store.go).
type deadLetterRow struct {
	org, customer, eventID, eventType, meter string
	reason, message, payload                 string
	time, ingestedAt, deadLetteredAt         time.Time
	partition                                int32
	offset                                   int64
}

// insertDeadLetters writes rows in one insert, exactly as the aggregator
// does; calling it twice with the same rows is a retried insert.
func insertDeadLetters(t testing.TB, conn driver.Conn, rows ...deadLetterRow) {
	t.Helper()
	batch, err := conn.PrepareBatch(context.Background(), `INSERT INTO dead_letters (org_id, customer_id, event_id, event_type, meter_key,
		reason, message, payload, time, ingested_at, dead_lettered_at, kafka_partition, kafka_offset)`)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := batch.Append(r.org, r.customer, r.eventID, r.eventType, r.meter, r.reason, r.message, r.payload,
			r.time.UTC().Truncate(time.Second), r.ingestedAt.UTC().Truncate(time.Second),
			r.deadLetteredAt.UTC().Truncate(time.Second), r.partition, r.offset); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}

// eventRow is one row of the events table, as the aggregator writes it.
type eventRow struct {
	org, customer, id string
	ingestedAt        time.Time
	offset            int64
}

// insertEvents writes events in one insert; calling it twice with the
// same rows is a retried insert (or a redelivered batch).
func insertEvents(t testing.TB, conn driver.Conn, rows ...eventRow) {
	t.Helper()
	batch, err := conn.PrepareBatch(context.Background(), `INSERT INTO events (org_id, customer_id, id, type, source,
		time, time_ns, properties, ingested_at, kafka_partition, kafka_offset)`)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		at := r.ingestedAt.UTC().Truncate(time.Second)
		if err := batch.Append(r.org, r.customer, r.id, "llm", "test", at, at.UnixNano(), `{}`, at, int32(0), r.offset); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}

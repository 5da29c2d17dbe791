-- Events that were accepted but cannot be metered (one row per event and
-- meter; meter_key is empty when the record itself is unreadable), with a
-- stable reason code and a message a person can act on. Keyed by the Kafka
-- position too, so that unreadable records without an id stay distinct.
-- tally:shard-by cityHash64(org_id, customer_id)
CREATE TABLE IF NOT EXISTS tally.dead_letters (
    org_id           String,
    customer_id      String,
    event_id         String,
    event_type       String,
    meter_key        String,
    reason           String,
    message          String,
    payload          String,
    time             DateTime('UTC'),
    ingested_at      DateTime('UTC'),
    dead_lettered_at DateTime('UTC'),
    kafka_partition  Int32,
    kafka_offset     Int64
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ingested_at)
ORDER BY (org_id, customer_id, event_id, meter_key, kafka_partition, kafka_offset)
;

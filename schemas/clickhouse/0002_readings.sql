-- What one event contributes to one meter revision: one row per
-- (meter, event), never pre-aggregated, so a duplicate row can always be
-- folded away (ReplacingMergeTree, read with FINAL) and AVG, UNIQUE_COUNT
-- and LATEST stay exact across any windows and groups.
-- ORDER BY starts with what every query binds (organization, meter,
-- revision, customer) and ends with the event id, which makes the sort key
-- the row's identity: an event's time never changes once its first version
-- is stored.
-- tally:shard-by cityHash64(org_id, customer_id)
CREATE TABLE IF NOT EXISTS readings (
    org_id          String,
    meter_key       String,
    meter_revision  UInt64,
    customer_id     String,
    event_id        String,
    time            DateTime('UTC'),
    time_ns         Int64,
    value           Decimal(38, 12),
    distinct_value  String,
    group_keys      Array(String),
    group_values    Array(String),
    ingested_at     DateTime('UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (org_id, meter_key, meter_revision, customer_id, time, event_id)

-- The readings again, sorted by UTC day before customer: what a usage query
-- that does not name its customers reads (query/usage/sql.go), fed by the
-- materialized view of 0016 in the same INSERT as readings and filled from
-- the readings already stored by 0017.
-- readings is sorted by customer before time, so one day across all
-- customers read 1,177 of its 1,229 marks at 10 million events (each
-- customer's range holds every day); here a day is one contiguous range
-- per part (47 of 1,229 marks), while a query of a few customers keeps
-- reading readings (12 marks). ClickHouse 18.16 does not derive a range of
-- toDate(time) from a condition on time, so the queries also bound
-- toDate(time) themselves.
-- The sort key is still the row's identity (toDate(time) is a function of
-- time): identical rows of a retried insert or a redelivered record fold
-- here exactly as in readings, and the table is read with FINAL.
-- tally:shard-by cityHash64(org_id, customer_id)
CREATE TABLE IF NOT EXISTS tally.readings_by_day_local ON CLUSTER tally (
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
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/tally/readings_by_day', '{replica}')
PARTITION BY toYYYYMM(time)
ORDER BY (org_id, meter_key, meter_revision, toDate(time), customer_id, time, event_id)
;

CREATE TABLE IF NOT EXISTS tally.readings_by_day ON CLUSTER tally AS tally.readings_by_day_local
ENGINE = Distributed(tally, tally, readings_by_day_local, cityHash64(org_id, customer_id))
;

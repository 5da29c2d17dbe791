-- The readings again, sorted like readings (by customer before time) in
-- granules of 1024 rows instead of 8192: what a usage query that names its
-- customers reads (query/usage/sql.go), fed by the materialized view of
-- 0019 in the same INSERT as readings and filled from the readings already
-- stored by 0020. readings keeps its sort key and granules (a table's
-- granularity cannot change, and the aggregator, the backfiller and any
-- older version write readings by name).
-- One customer's 31 days at 10 million events select about as many marks
-- as in readings (9 instead of 12, one or two per part) but read 8 times
-- fewer rows, and FINAL merges those: p50 19.5 ms instead of 142 ms, at
-- a load average of 22 on 2 CPUs. A primary index of 8 times as many
-- marks (about 3 MB per 100 million readings of one meter) is its cost.
-- The sort key is the row's identity, as in readings: identical rows of a
-- retried insert or a redelivered record fold, and the table is read with
-- FINAL.
-- tally:shard-by cityHash64(org_id, customer_id)
CREATE TABLE IF NOT EXISTS tally.readings_by_customer (
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
SETTINGS index_granularity = 1024
;

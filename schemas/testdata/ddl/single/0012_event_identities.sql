-- The identity and Kafka position of every stored event, found by a hash of
-- the identity: what the aggregator's first-version lookup reads
-- (aggregator/doc.go), kept by the materialized view of 0013 and filled
-- from the events already stored by 0014.
-- A lookup of a batch's keys reads, in each active part, the index granule
-- of every key. events is partitioned by month (a key is looked for in
-- every month) with granules of 1024 rows, so its lookups read most of the
-- table once it held a few million events. Here there is one partition,
-- whose parts merges keep few, granules of 32 rows, and a primary index of
-- the 8-byte hash alone (about 250 MB of memory per billion events), so a
-- key reads at most 32 hashes per active part whatever the number of
-- events, and the identity columns only where its hash is.
-- The sort key includes the position, so two identities with the same hash
-- never fold into one row; identical rows (a retried insert, a redelivered
-- record) still do.
-- tally:shard-by cityHash64(org_id, customer_id)
CREATE TABLE IF NOT EXISTS tally.event_identities (
    key_hash        UInt64,
    org_id          String,
    customer_id     String,
    id              String,
    kafka_partition Int32,
    kafka_offset    Int64
) ENGINE = ReplacingMergeTree
ORDER BY (key_hash, kafka_partition, kafka_offset)
PRIMARY KEY key_hash
SETTINGS index_granularity = 32
;

-- The shard layout of each ClickHouse cluster Tally's tables are on (cluster
-- mode, -clickhouse.cluster), recorded by the first service that starts on
-- it (internal/chclient/layout.go). A Distributed table sends a row to the
-- shard its key (a hash of organization and customer) picks modulo the sum
-- of the shards' weights in remote_servers, so every row of an identity
-- shares one shard only while the shards and their weights stay the same;
-- adding a shard or changing a weight moves keys, and a redelivered batch,
-- a backfill redone or a copy would then write a second copy of rows on
-- another shard, where FINAL, which folds per shard, counts both. Every
-- service compares the cluster's current layout with the recorded one at
-- start and refuses to start on a difference. The row with the latest
-- recorded_at is the accepted layout: an operator who has re-sharded the
-- data (SCALING.md) accepts a new layout by inserting a row. Two services
-- recording at once write the same layout. One server: not used.
-- tally:shard-by cityHash64(cluster)
CREATE TABLE IF NOT EXISTS tally.cluster_layout (
    cluster     String,
    shards      UInt32,
    weights     Array(UInt32),
    recorded_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(recorded_at)
ORDER BY cluster
;

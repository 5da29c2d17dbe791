-- Subscriptions of the catalog (key: the subscription's external_id),
-- stored like meters and customers (see 0006_customers.sql): one row per
-- change with a higher version, current state by argMax(..., version).
-- A termination is not a deletion: terminated subscriptions are still
-- listed and billed for the time they ran. Terminations are stored in
-- subscription_terminations (0010), which reads overlay onto the
-- definition; a definition may also hold terminated_at. The status is derived from the times on read, never
-- stored. Lists filter by customer and plan with visitParamExtractString
-- on the current definition (ClickHouse 18.16 has no JSONExtract): the
-- table holds one row per change, so it stays small enough to scan per
-- organization.
-- A small index granularity: lookups read whole granules; subscriptions
-- are small, and one customer's are read by key.
-- tally:shard-by cityHash64(org_id)
CREATE TABLE IF NOT EXISTS subscriptions (
    org_id     String,
    key        String,
    revision   UInt64,
    definition String,
    deleted    UInt8,
    version    UInt64,
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY (org_id, key)
SETTINGS index_granularity = 128

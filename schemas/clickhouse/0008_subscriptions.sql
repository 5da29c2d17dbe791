-- Subscriptions of the catalog (key: the subscription's external_id),
-- stored like meters and customers (see 0006_customers.sql): one row per
-- change with a higher version, current state by argMax(..., version).
-- A termination is a change (terminated_at set in the definition), not a
-- deletion: terminated subscriptions are still listed and billed for the
-- time they ran. The status is derived from the times on read, never
-- stored. Lists filter by customer and plan with visitParamExtractString
-- on the current definition (ClickHouse 18.16 has no JSONExtract): the
-- table holds one row per change, so it stays small enough to scan per
-- organization.
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

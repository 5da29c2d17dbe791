-- Plans of the catalog (key: the plan's code), stored like meters and
-- customers (see 0006_customers.sql): one row per change with a higher
-- version, deleted = 1 for a deletion, current state by argMax(...,
-- version). revision is the version that created the plan and is kept by
-- updates, so a plan deleted and created again under its code is a new
-- revision. definition is the plan as JSON, with its charges and their
-- ids, which the store keeps across updates.
-- A small index granularity: a lookup reads the granules that hold its
-- keys, definitions included, and a plan can be a megabyte (100 charges of
-- 100 tiers): 16 rows keep one read to tens of megabytes at most.
-- tally:shard-by cityHash64(org_id)
CREATE TABLE IF NOT EXISTS tally.plans (
    org_id     String,
    key        String,
    revision   UInt64,
    definition String,
    deleted    UInt8,
    version    UInt64,
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY (org_id, key)
SETTINGS index_granularity = 16
;

-- Customers of the catalog (key: the customer's external_id), stored next
-- to the meters with the same revision scheme, so the catalog needs no
-- second database: each change inserts a row with a higher version, a
-- deletion is a row with deleted = 1, and readers take the current state
-- with argMax(..., version) GROUP BY org_id, key, never relying on merges.
-- definition is the customer as JSON; revision is the version that created
-- the key, so a customer deleted and created again gets a new revision.
-- ReplacingMergeTree(version) only saves space: merges keep the highest
-- version of a key, which is the row readers take anyway. ORDER BY is the
-- document's identity and serves every read, which names the organization.
-- A small index granularity: a lookup reads the granules that hold its
-- keys, definitions included, and a customer can hold 50 KiB of metadata.
-- tally:shard-by cityHash64(org_id)
CREATE TABLE IF NOT EXISTS tally.customers_local ON CLUSTER tally (
    org_id     String,
    key        String,
    revision   UInt64,
    definition String,
    deleted    UInt8,
    version    UInt64,
    updated_at DateTime('UTC')
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/tally/customers', '{replica}', version)
ORDER BY (org_id, key)
SETTINGS index_granularity = 128
;

CREATE TABLE IF NOT EXISTS tally.customers ON CLUSTER tally AS tally.customers_local
ENGINE = Distributed(tally, tally, customers_local, cityHash64(org_id))
;

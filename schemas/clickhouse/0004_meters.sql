-- Meter definitions, shared by the query service (which serves the meters
-- API) and the aggregator (which reloads them for every batch). Each change
-- inserts a row with a higher version; deletion is a row with deleted = 1.
-- tally:shard-by cityHash64(org_id)
CREATE TABLE IF NOT EXISTS meters (
    org_id     String,
    key        String,
    revision   UInt64,
    definition String,
    deleted    UInt8,
    version    UInt64,
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY (org_id, key)

-- Responses saved under an Idempotency-Key, so that a retried API request
-- gets the answer of the first one instead of acting twice. A lookup reads
-- the entries of (org_id, scope, key) saved since the start of the window
-- (24 hours) and takes the first one by version (ClickHouse's own second
-- of the save times 10^9, plus the saving process's nanoseconds within
-- it; see internal/catalogstore/idempotency_clock.go), so two racing
-- requests that both saved converge on one answer whatever their clocks
-- say. ORDER BY serves that lookup.
-- Plain MergeTree, not ReplacingMergeTree: a merge could fold two
-- different answers saved with one version and change which one is
-- first. The row a retried insert writes twice is identical to the first,
-- so keeping both is harmless.
-- No expiry: ClickHouse 18.16 has no TTL, so entries stay and reads ignore
-- those older than the window. Monthly partitions let an operator drop old
-- months (ALTER TABLE idempotency_keys DROP PARTITION 202401); a later
-- migration can add TTL created_at + INTERVAL 1 DAY on ClickHouse 20+.
-- A small index granularity: a lookup reads the granules that hold its
-- key, bodies included, and a stored body can be a megabyte.
-- tally:shard-by cityHash64(org_id)
CREATE TABLE IF NOT EXISTS tally.idempotency_keys (
    org_id       String,
    scope        String,
    key          String,
    version      UInt64,
    created_at   DateTime('UTC'),
    request_hash String,
    status       UInt16,
    body         String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (org_id, scope, key, version)
SETTINGS index_granularity = 16
;

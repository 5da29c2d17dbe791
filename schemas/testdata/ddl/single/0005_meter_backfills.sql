-- Meter revisions whose readings the aggregator has recomputed from the
-- events table, so that events stored before a meter existed count too.
-- A row means the backfill completed; a revision without one is backfilled
-- (again) by the next aggregator that sees it, which is harmless because
-- readings are idempotent rows. ORDER BY is the revision's identity.
-- tally:shard-by cityHash64(org_id)
CREATE TABLE IF NOT EXISTS tally.meter_backfills (
    org_id         String,
    meter_key      String,
    meter_revision UInt64,
    events         UInt64,
    completed_at   DateTime('UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (org_id, meter_key, meter_revision)
;

-- Every INSERT INTO tally.readings writes the same rows into readings_by_day in
-- the same INSERT, whoever sends it (the aggregator, the backfiller, an
-- aggregator of any version): the insert returns only after both tables
-- have the block, so a usage query that follows sees it in either, and a
-- failed insert is retried whole, which both tables fold. Created before
-- 0017 fills the table from readings, so no reading stored in between is
-- missing from it.
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.readings_by_day_feed TO tally.readings_by_day
AS SELECT org_id, meter_key, meter_revision, customer_id, event_id, time, time_ns, value, distinct_value, group_keys, group_values, ingested_at
FROM tally.readings
;

-- Every INSERT INTO tally.readings writes the same rows into
-- readings_by_customer in the same INSERT, as 0016 does for
-- readings_by_day: whoever sends it, returning only after every table has
-- the block, retried whole on failure (which every table folds). Created
-- before 0020 fills the table from readings.
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.readings_by_customer_feed TO tally.readings_by_customer
AS SELECT org_id, meter_key, meter_revision, customer_id, event_id, time, time_ns, value, distinct_value, group_keys, group_values, ingested_at
FROM tally.readings
;

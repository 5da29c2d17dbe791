-- The readings stored before 0019 fed readings_by_customer. As with 0017,
-- a reading stored in between, or a copy run again after a crash, writes
-- rows that are already there, which the ReplacingMergeTree folds; a
-- service that migrates at start does not start until this is recorded,
-- and a query service that does not migrate reads readings until this and
-- 0023 are. The runner waits for the INSERTs into readings open before the
-- copy, and copies a month per statement, as for 0017; stores that ran
-- this copy before the runner waited run it again in 0023.
-- tally:copy-from readings
INSERT INTO tally.readings_by_customer (org_id, meter_key, meter_revision, customer_id, event_id, time, time_ns, value, distinct_value, group_keys, group_values, ingested_at)
SELECT org_id, meter_key, meter_revision, customer_id, event_id, time, time_ns, value, distinct_value, group_keys, group_values, ingested_at
FROM tally.readings
;

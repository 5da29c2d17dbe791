-- The readings stored before 0016 fed readings_by_day. A reading stored
-- between 0016 and this copy arrives twice, and a copy run again (after a
-- crash before it was recorded) writes rows that are already there: the
-- ReplacingMergeTree folds both, and the table is read with FINAL. A
-- service that migrates at start does not start until it is recorded
-- (chclient.Migrate stops at a failed migration), so no query reads
-- readings_by_day before it holds every reading; a query service that
-- does not migrate reads readings until this and 0022 are recorded
-- (query/usage/tables.go).
-- An INSERT INTO tally.readings prepared before 0016 existed is not fed to
-- readings_by_day, however late its data arrives (ClickHouse binds an
-- INSERT to the views that exist when it is prepared): the runner waits
-- until every INSERT INTO tally.readings open before this copy has ended, and
-- copies one month of readings per statement (schemas.Migration.CopyFrom).
-- Stores that ran this copy before the runner waited run it again in 0022.
-- tally:copy-from readings
INSERT INTO tally.readings_by_day (org_id, meter_key, meter_revision, customer_id, event_id, time, time_ns, value, distinct_value, group_keys, group_values, ingested_at)
SELECT org_id, meter_key, meter_revision, customer_id, event_id, time, time_ns, value, distinct_value, group_keys, group_values, ingested_at
FROM tally.readings
;

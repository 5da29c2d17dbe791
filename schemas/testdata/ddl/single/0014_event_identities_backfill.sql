-- The events stored before 0013 fed event_identities. Run again (after a
-- crash before it was recorded), it writes rows that are already there,
-- which the ReplacingMergeTree folds; a service that migrates at start does
-- not start until it is recorded (chclient.Migrate stops at a failed
-- migration).
-- An INSERT INTO tally.events prepared before 0013 existed is not fed to
-- event_identities, however late its data arrives (ClickHouse binds an
-- INSERT to the views that exist when it is prepared): the runner waits
-- until every INSERT INTO tally.events open before this copy has ended, and
-- copies one month of events per statement (schemas.Migration.CopyFrom).
-- Stores that ran this copy before the runner waited run it again in 0021.
-- tally:copy-from events
INSERT INTO tally.event_identities (key_hash, org_id, customer_id, id, kafka_partition, kafka_offset)
SELECT cityHash64(org_id, customer_id, id), org_id, customer_id, id, kafka_partition, kafka_offset
FROM tally.events
;

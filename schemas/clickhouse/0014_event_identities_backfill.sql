-- The events stored before 0013 fed event_identities. Run again (after a
-- crash before it was recorded), it writes rows that are already there,
-- which the ReplacingMergeTree folds; a service that migrates at start does
-- not start until it is recorded (chclient.Migrate stops at a failed
-- migration).
INSERT INTO event_identities (key_hash, org_id, customer_id, id, kafka_partition, kafka_offset)
SELECT cityHash64(org_id, customer_id, id), org_id, customer_id, id, kafka_partition, kafka_offset
FROM events

-- 0014 again, for stores that ran it before the runner waited for the
-- INSERTs into events open when 0013's feed was created: such an INSERT
-- (an aggregator of the previous version writing while another process
-- migrated) stored its events in events only, and the first-version
-- lookup, which reads event_identities, would meter a later version of
-- one of them as a first one (counted twice). Every identity is copied
-- again; the ones already there fold (ReplacingMergeTree, identical rows).
-- The runner skips it when it ran 0014 itself in the same run.
-- tally:copy-from events
-- tally:repeats 0014
INSERT INTO tally.event_identities (key_hash, org_id, customer_id, id, kafka_partition, kafka_offset)
SELECT cityHash64(org_id, customer_id, id), org_id, customer_id, id, kafka_partition, kafka_offset
FROM tally.events
;

-- Every insert into events writes its identities into event_identities in
-- the same INSERT, whoever sends it (an aggregator of any version included):
-- the insert returns only after both tables have the block, so a lookup
-- that follows on the same session sees it (read-your-writes), and a
-- failed insert is retried whole, which both tables fold. Created before
-- 0014 fills the table from events, so no event stored in between is
-- missing from it. The lookup computes the hash the same way.
CREATE MATERIALIZED VIEW IF NOT EXISTS tally.event_identities_feed ON CLUSTER tally TO tally.event_identities_local
AS SELECT cityHash64(org_id, customer_id, id) AS key_hash, org_id, customer_id, id, kafka_partition, kafka_offset
FROM tally.events_local
;

-- Terminations of subscriptions, kept apart from their documents
-- (0008_subscriptions.sql) so that no write of a document can undo one.
-- ClickHouse has no transactions: an update reads a subscription and
-- appends a changed copy with a higher version, and a termination that
-- landed between the read and the append would be overwritten by that
-- copy (terminated_at null). Here a termination is only ever inserted,
-- never rewritten, and every read of a subscription overlays the
-- termination of its current revision onto the document: the table is the
-- truth, whatever terminated_at the document holds.
-- A termination belongs to one revision (the version that created the
-- subscription's key), so a key deleted and created again starts
-- unterminated. terminated_at is Unix nanoseconds: ClickHouse 18.16 has no
-- DateTime64, and DateTime would drop the sub-second part the API shows.
-- Racing terminations of one revision may both insert: reads take
-- min(terminated_at) per (org_id, external_id, revision), so they converge
-- on the earliest, and merges agree: version is 2^63 - 1 - terminated_at,
-- so ReplacingMergeTree(version) keeps the earliest row when it folds a
-- key (a retried insert's identical copy folds too). Reads never depend
-- on merges having run. created_at is when the row was written
-- (informational).
-- tally:shard-by cityHash64(org_id)
CREATE TABLE IF NOT EXISTS tally.subscription_terminations_local ON CLUSTER tally (
    org_id        String,
    external_id   String,
    revision      UInt64,
    terminated_at Int64,
    version       UInt64,
    created_at    DateTime('UTC')
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/tally/subscription_terminations', '{replica}', version)
ORDER BY (org_id, external_id, revision)
;

CREATE TABLE IF NOT EXISTS tally.subscription_terminations ON CLUSTER tally AS tally.subscription_terminations_local
ENGINE = Distributed(tally, tally, subscription_terminations_local, cityHash64(org_id))
;

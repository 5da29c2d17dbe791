-- The partition count of each event topic the aggregator consumes, recorded
-- by the first aggregator that sees the topic (aggregator/partitions.go).
-- Ingest keys records by organization and customer, so all versions of an
-- identity share one partition only while the count stays the same; adding
-- partitions moves keys, and two versions of an identity could then be
-- consumed in parallel and both counted. Every aggregator compares the
-- topic's current count with the recorded one at start and every few
-- seconds, and stops consuming on a difference. The row with the latest
-- recorded_at is the accepted count: an operator who has made sure no
-- identity is split accepts a new count by inserting a row (the README
-- says how). Two aggregators recording at once write the same count.
-- tally:shard-by cityHash64(topic)
CREATE TABLE IF NOT EXISTS tally.event_topic_partitions (
    topic       String,
    partitions  UInt32,
    recorded_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(recorded_at)
ORDER BY topic
;

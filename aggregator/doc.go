// Package aggregator is the middle of the pipeline: it consumes the event
// topic in a Kafka consumer group, applies each organization's meters to
// every event, and writes raw events, readings (what one event contributes
// to one meter revision) and dead letters to ClickHouse, committing a
// batch's offset only after all of it is durable.
//
// # Exactly once, from the data model
//
// An event's identity is (org_id, customer_id, id) and its first accepted
// version wins. kafka-go has no idempotent producer and ClickHouse 18.16 no
// insert deduplication tokens; a retried insert may write a block twice and
// a crash or rebalance redelivers uncommitted records. So every table the
// aggregator writes is a ReplacingMergeTree whose sort key is the row's
// identity, and identical rows written twice fold (the query service reads
// readings, or the copies its materialized views write in the same INSERT,
// readings_by_customer and readings_by_day, with FINAL). What remains is to write readings for the first
// version only. Ingest keys records by organization and customer, so every
// version of an identity is in one partition, in log order: within a batch
// the lowest offset wins; across batches the stored events answer, since
// they hold each first version with its Kafka position. That answer must
// include every insert of the partition that returned before the lookup
// (read-your-writes, the Store's contract), which a pool over several
// replicas or a load balancer does not give: each partition's lookups and
// inserts therefore run on one ClickHouse connection, its session, and
// reach one server (at most -clickhouse.max-open-conns sessions per
// process, shared in turn by the partitions beyond); with replicas,
// -clickhouse.insert-quorum (or -clickhouse.sequential-consistency on
// ClickHouse Cloud) extends the guarantee across reconnections and
// rebalances (session.go): set to the replicas of a shard, every replica
// holds an insert before it returns, so a lookup on any of them sees it
// (TestClusterReadYourWrites shows an event counted twice without it).
// ClickHouse 18.16 runs quorum inserts one at a time per table and shard,
// so once it refuses one for that reason the process queues its own
// inserts per table (quorum.go). A stored row at
// the record's own position is the record itself, redelivered: it is
// processed again, idempotently, which also repairs a crash between the
// events and readings inserts. A stored row elsewhere makes the record a
// duplicate that changes nothing.
//
// The lookup reads event_identities, not events: the identity, hash and
// position of every stored event, which a materialized view writes in the
// same INSERT as events (schemas/clickhouse/0012-0014), so whatever events
// holds when an insert returns, event_identities holds too, and an insert
// retried or interrupted is repaired in both by the same retry or
// redelivery. events is partitioned by month with granules of 1024 rows and
// a lookup read a granule per key in every month: most of the table once
// it held a few million events. event_identities has one partition,
// granules of 32 rows and a primary index of the identity's 8-byte hash, so
// a key reads at most 32 hashes per active part, and the identity columns
// only where its hash is, however many events are stored;
// tally_aggregator_lookup_rows_read_per_key shows it (TestLookupScale
// measures it).
//
// # One batch, in order
//
//  1. decode the records; unreadable ones are dead-lettered by position
//  2. deduplicate within the batch
//  3. look up the identities in event_identities (an external table of keys)
//  4. insert the first versions and redeliveries into events (and so
//     event_identities)
//  5. load the meters (after 4: see backfill.go)
//  6. evaluate the meters of each event's organization and type
//  7. insert readings and dead letters
//  8. publish dead letters to the dead-letter topic
//  9. commit the offset, only after 4, 7 and 8 succeeded
//  10. observe the pipeline latency of the stored events
//
// A batch whose events make more than 100,000 readings and dead letters
// (many meters per event type) runs 1-8 in several passes, each over the
// records the previous one left (batch.go); each record is copied into
// at most one of its dead letters, so dead letters are bounded by the
// batch's bytes, not by the number of meters (deadletter.go).
//
// ClickHouse and dead-letter failures are retried with exponential backoff
// for as long as it takes, without committing; the retries wrap the Store,
// MeterSource and DeadLetterPublisher interfaces, not the call sites.
// Readiness reports a partition that makes no progress, and one that was
// halted on purpose (halt.go) with what to do about it.
//
// # Consumer group
//
// The consumer uses kafka-go's ConsumerGroup directly rather than a Reader
// with a GroupID. Such a Reader hides its assignment, and health must know
// whether this process holds partitions: OpenMeter's sink once lost its
// assignment and reported healthy for 16 hours. For each generation, every
// assigned partition gets its own loop with a single-partition Reader
// positioned at the committed offset; it cuts batches of BatchSize records
// or BatchLinger after the first, processes them and commits through the
// generation. Partitions run in parallel and independently, because an
// identity never spans partitions. When a rebalance ends the generation,
// fetching stops and an uncommitted batch is abandoned; the next owner gets
// it again, which the data model makes harmless. Each member also checks
// that every partition of the topic has an owner and forces a rebalance
// if not (assignment.go): kafka-go alone can leave a partition created
// during a join unowned for good.
//
// The partition count of the event topic must not change while it holds
// records: the key-to-partition mapping would change, an identity's
// versions could then sit in two partitions consumed in parallel, and
// "first version" would lose its meaning. The aggregator refuses the
// change (partitions.go): the first member records the count in
// ClickHouse, every member compares at each generation and assignment
// check, and a difference stops consumption with readiness red until an
// operator records the new count. Create the topic with the partitions it
// will need; to grow, move to a new topic (README, "Scaling the
// aggregator"). On a ClickHouse cluster the same checks compare the
// shard layout (shard count and weights) with the accepted one in
// cluster_layout, since a changed layout moves customers to other shards
// where FINAL would not fold their copies, and halt consumption the same
// way (reason cluster_layout_changed) until it matches again.
//
// Nothing is skipped silently either: records deleted from the topic
// before they were metered, and a log that ends before the committed
// offset (truncated), halt their partition at the committed offset
// (position.go), and the event topic must have no retention (readiness,
// kafkaclient). Batches and the fetch queue of each partition are bounded
// in bytes as well as in records (Config).
//
// The dead-letter topic is at least once: a redelivered batch publishes
// its dead letters again. Consumers of that topic deduplicate by
// (org_id, customer_id, event_id, meter_key, partition, offset), the
// identity of the dead_letters table.
package aggregator

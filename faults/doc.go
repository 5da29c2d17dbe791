// Package faults is Tally's fault suite: it proves end to end, with the
// built `tally` binary, a real ClickHouse and an in-process Kafka-protocol
// broker (franz-go's kfake), that every event acknowledged by ingest is
// counted exactly once whatever fails in between.
//
// Each test starts its own stack (kfake with a data directory on fixed
// ports, a private ClickHouse server, `tally migrate`, `tally ingest`, one
// to three `tally aggregator` processes and `tally query`, as
// subprocesses), drives load through the public ingest API with a
// generator that records every event answered 2xx, injects one fault,
// recovers, and then compares: for every (organization, meter, customer,
// DAY window in UTC, group) the usage the query API answers must equal the
// usage computed in the test, with shopspring/decimal, from the
// acknowledged events alone. Nothing is mocked.
//
// The generator keeps the documented client contract: events answered
// non-2xx or with a transport error are re-sent unchanged (same id, same
// payload) until acknowledged, because a 503 may or may not have recorded
// them. Only the retry-storm fault re-sends an acknowledged id with a
// changed payload, and only after the first version was acknowledged, so
// the version that must win is known.
//
// The faults, one test each:
//
//	TestFaultAggregatorKill      aggregator SIGKILLed mid-batch several times, restarted
//	TestFaultClickHouseOutage    ClickHouse stopped 20-30 s under load, restarted
//	TestFaultBroker              kfake produce errors, delayed and dropped acks, broker restart
//	TestFaultRebalance           three aggregators in a group, one killed and one added
//	TestFaultRetryStorm          every event sent 2-3 times concurrently, changed re-sends
//	TestFaultPoison              unmeterable values and the largest event ingest accepts
//	TestFaultStalledConsumer     fetches fail while lag grows: readiness and metrics show it
//
// TestClusterKillReplicaAndAggregator runs the production layout instead
// of one server: ZooKeeper, ClickHouse as 2 shards x 2 replicas (`tally
// migrate -clickhouse.cluster`, every table Replicated under a
// Distributed one), a three-broker kfake (topics with replication factor
// 3 and min.insync.replicas 2), two ingest processes sharing the load of
// several producers, three aggregators writing with insert_quorum=2 and
// two query processes, each process given the four servers starting at
// a different one. It SIGKILLs one replica and one aggregator under
// load, restarts both, and compares the answers of both query processes
// with the oracle, by customer and model as the other faults do (read
// from readings_by_day) and for two customers asked for by name (read
// from readings_by_customer). It also logs the figures SCALING.md quotes (events/s
// accepted and made queryable, insert cost, time to recover). `go test
// ./faults` runs it with a small load; `make test-cluster`
// (TALLY_CLUSTER=full) with a larger one.
//
// `go test ./faults` (part of `make test`) runs the short version: small
// loads and the cheaper faults. `make test-faults` (TALLY_FAULTS=full) runs
// all seven with larger loads. Either prints a table of acknowledged and
// counted events, duplicates, lost events and time to recover, and fails on
// any difference. `go test -short` skips the package. TALLY_FAULTS_BIN
// names a tally binary to test instead of building ./cmd/tally (to run
// the suite against an older build, for example).
//
// Limits: one broker (kfake, in the test process) and one ClickHouse
// server, except in the cluster test; loads of a few thousand events (short) to some tens of
// thousands (full) over two organizations, spread over three days of
// event time. Recovery times are measured, never asserted: the verdict
// is equality, within a generous deadline.
package faults

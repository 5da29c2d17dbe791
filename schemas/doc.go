// Package schemas is the contract every Tally component shares.
//
// It defines the usage event that producers send and its validation
// (event.go), the meter definitions that turn events into usage (meter.go,
// filter.go, path.go) and how a meter evaluates one event (evaluate.go), the
// Kafka record that carries an accepted event from ingest to the aggregator
// (encoding.go, the only place that knows the record layout), and the
// ClickHouse DDL applied by migrations (clickhouse/*.sql, migrate.go).
//
// Nothing in here talks to the network: ingest, aggregator and query import
// it, never each other.
package schemas

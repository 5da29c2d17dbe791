// Package schemas is the contract every Tally component shares.
//
// It defines the usage event that producers send and its validation
// (event.go; event_json.go reads its JSON in one pass and enforces the
// limits on numbers, nesting and member names), the meter definitions that turn events into usage (meter.go,
// filter.go, path.go), every aggregation in one table (aggregation.go) and
// how a meter evaluates one event (evaluate.go), the Kafka record that
// carries an accepted event from ingest to the aggregator (encoding.go, the
// only place that knows the record layout), the catalog that prices usage
// (catalog*.go: customers, plans and their charges, subscriptions; the
// ISO 4217 currencies in currency.go), and the ClickHouse DDL as text
// (clickhouse/*.sql, migrate.go), which internal/chclient applies.
//
// Nothing in here does I/O: ingest, aggregator and query import it, never
// each other.
package schemas

// Package client is a Go client for Tally's public API: it sends usage
// events to ingest and manages meters and reads usage from query, over the
// one base URL that `tally all` serves (http://127.0.0.1:8000) or a
// deployment's load balancer.
//
// Sending is safe to retry by design. Ingest identifies an event by
// (organization, customer_id, id) and the first accepted version wins, so
// the client gives every event without an id a random UUID before the first
// attempt, encodes (and gzips) the request body once, and sends exactly
// those bytes again on a 429, a 503 or a network error. A 503 from ingest
// means the events may or may not have been recorded; sending the same ones
// again counts each once. Ingest answers a duplicate like any event (202,
// counted in accepted); the aggregator keeps the first version of each
// identity. Other errors (400, 401, 413) are not retried.
//
// Send posts one request. A Batcher gathers events into requests bounded in
// events and in bytes, sends a partial batch after a linger time, and
// reports each request's accepted and rejected events.
//
// Usage values are exact decimals (shopspring/decimal), never float64, as
// the API writes them.
package client

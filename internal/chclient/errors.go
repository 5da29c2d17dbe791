package chclient

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Failure is what a failed ClickHouse call means for the client of an
// API: every route answers the same failure with the same status.
type Failure int

// The failures a ClickHouse call can have.
const (
	// FailureCanceled: the client went away; nobody reads the answer.
	FailureCanceled Failure = iota + 1
	// FailureTimeout: the request's deadline passed (503, retry later).
	FailureTimeout
	// FailureUnavailable: ClickHouse unreachable, its connection lost, or
	// busy right now (503, retry later).
	FailureUnavailable
	// FailureInternal: anything else, a bug of ours or data no code
	// expects (500); a retry would fail the same way.
	FailureInternal
)

// retryableCodes are ClickHouse's "busy or too slow right now" errors,
// worth a retry, unlike an exception about the query itself.
var retryableCodes = map[int32]bool{
	159: true, // TIMEOUT_EXCEEDED
	202: true, // TOO_MANY_SIMULTANEOUS_QUERIES
	241: true, // MEMORY_LIMIT_EXCEEDED
}

// clusterCodes are a cluster's (Config.Cluster) answers while a replica or
// ZooKeeper is down or behind, or a quorum insert waits for the one before
// it (18.16 runs one quorum insert per table at a time): retryable, and
// they end by themselves, whatever the statement.
var clusterCodes = map[int32]bool{
	209: true, // SOCKET_TIMEOUT (between servers: a Distributed query or insert)
	210: true, // NETWORK_ERROR (idem)
	225: true, // NO_ZOOKEEPER
	242: true, // TABLE_IS_READ_ONLY (a replica without its ZooKeeper session)
	279: true, // ALL_CONNECTION_TRIES_FAILED (no replica of a shard reachable)
	285: true, // TOO_FEW_LIVE_REPLICAS (for the insert's quorum)
	286: true, // UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
	289: true, // REPLICA_IS_NOT_IN_QUORUM (select_sequential_consistency on a replica still fetching)
	319: true, // UNKNOWN_STATUS_OF_INSERT (the quorum's outcome is unknown: retried, the rows fold)
	369: true, // ALL_REPLICAS_ARE_STALE (every replica of a shard more than max_replica_delay_for_distributed_queries behind)
	999: true, // KEEPER_EXCEPTION (ZooKeeper lost or slow)
}

// Classify says what err, returned by a ClickHouse call made for a
// request whose context is ctx, means for the client.
func Classify(ctx context.Context, err error) Failure {
	var ex *clickhouse.Exception
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return FailureCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return FailureTimeout
	case errors.As(err, &ex):
		if retryableCodes[ex.Code] || clusterCodes[ex.Code] {
			return FailureUnavailable
		}
		return FailureInternal
	case errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, clickhouse.ErrAcquireConnTimeout), errors.Is(err, clickhouse.ErrConnectionClosed):
		return FailureUnavailable
	}
	return FailureInternal
}

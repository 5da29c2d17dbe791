package chclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/cenkalti/backoff/v4"

	"github.com/tally-oss/tally/schemas"
)

// execDDL runs one statement. On a cluster the statement is ON CLUSTER:
// ClickHouse queues it in ZooKeeper, every server runs it, and the answer
// is a row per server (host, port, status, error, num_hosts_remaining,
// num_hosts_active); a row whose status is not 0 is a server where it
// failed, which fails the statement. A server that does not answer within
// distributed_ddl_task_timeout (180 s) fails it too (an exception): the
// statement stays queued and runs when the server is back, and the next
// migration run, whose statements are all IF NOT EXISTS, completes.
func execDDL(ctx context.Context, conn driver.Conn, target schemas.Target, stmt string) error {
	if target.Cluster == "" {
		return conn.Exec(ctx, stmt)
	}
	rows, err := conn.Query(ctx, stmt)
	if err != nil {
		return err
	}
	defer rows.Close()
	var errs []error
	for rows.Next() {
		var (
			host               string
			port               uint16
			status             int64
			message            string
			remaining, running uint64
		)
		if err := rows.Scan(&host, &port, &status, &message, &remaining, &running); err != nil {
			return fmt.Errorf("read the servers' answers ON CLUSTER %s: %w", target.Cluster, err)
		}
		if status != 0 {
			errs = append(errs, fmt.Errorf("on %s:%d (code %d): %s", host, port, status, message))
		}
	}
	if err := rows.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// copyMigrationOnCluster is copyMigration on a cluster. The source S and
// target T are Distributed tables over S_local and T_local, sharded by
// the same key (schemas.Render):
//  1. wait until every INSERT into S or S_local open now on any server
//     of the cluster has ended (waitForOpenInsertsOnCluster);
//  2. list the months of S_local's parts on every server;
//  3. for each month, copy S_local of every server into T (Distributed,
//     insert_distributed_sync=1), which sends each row to its shard.
//
// Every replica is read, not one per shard: replication is asynchronous,
// and a replica may not have fetched yet a part that an ended INSERT
// wrote on another. A row copied from two replicas of its shard is the
// same row twice, which T folds (ReplacingMergeTree, read with FINAL) as
// on one server a copy run twice. Every server must answer: one that
// does not fails the copy (its INSERTs could not be waited for, nor its
// rows read), and the next run copies again.
func copyMigrationOnCluster(ctx context.Context, conn driver.Conn, target schemas.Target, m schemas.Migration, opts MigrateOptions) error {
	hosts, err := clusterHosts(ctx, conn, target.Cluster)
	if err != nil {
		return err
	}
	if len(hosts) == 0 {
		return fmt.Errorf("cluster %s is not in system.clusters", target.Cluster)
	}
	user, password := credentials(conn)
	if err := waitForOpenInsertsOnCluster(ctx, conn, hosts, user, password, target.Database, m, opts); err != nil {
		return err
	}
	local := m.CopyFrom + schemas.LocalSuffix
	var months []int
	for _, h := range hosts {
		rows, err := conn.Query(ctx, "SELECT DISTINCT partition_id FROM "+remote(h.Addr, "system", "parts", user, password)+
			" WHERE database = ? AND table = ? AND active", target.Database, local)
		if err != nil {
			return fmt.Errorf("list the partitions of %s on %s: %w", local, h.Addr, err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("list the partitions of %s on %s: %w", local, h.Addr, err)
			}
			month, err := strconv.Atoi(id)
			if err != nil {
				rows.Close()
				return fmt.Errorf("partition %q of %s on %s is not a toYYYYMM(time) month", id, local, h.Addr)
			}
			months = append(months, month)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("list the partitions of %s on %s: %w", local, h.Addr, err)
		}
	}
	slices.Sort(months)
	months = slices.Compact(months)
	stmts, err := m.Render(target)
	if err != nil {
		return err
	}
	// Migrations() holds every copy to ending with the line "FROM <source>".
	insert, ok := strings.CutSuffix(stmts[0], "\nFROM "+target.Database+"."+m.CopyFrom)
	if len(stmts) != 1 || !ok {
		return fmt.Errorf("a copy must render to one statement ending with FROM %s.%s", target.Database, m.CopyFrom)
	}
	for _, month := range months {
		for _, h := range hosts {
			sql := fmt.Sprintf("%s\nFROM %s\nWHERE toYYYYMM(time) = %d", insert, remote(h.Addr, target.Database, local, user, password), month)
			if err := execRetrying(ctx, conn, sql, opts.Logger); err != nil {
				return fmt.Errorf("copy month %d from %s: %w", month, h.Addr, err)
			}
		}
	}
	return nil
}

// waitForOpenInsertsOnCluster is waitForOpenInserts on every server of
// the cluster: an INSERT into the Distributed table on the server where
// it was sent, and into the local table where the Distributed table
// forwards its rows (not an initial query there), are both waited for:
// each binds the local table's views when it is prepared. The time since
// the wait began is measured here and compared with each query's elapsed
// time, so the servers' clocks need not agree.
func waitForOpenInsertsOnCluster(ctx context.Context, conn driver.Conn, hosts []host, user, password, database string, m schemas.Migration, opts MigrateOptions) error {
	began := time.Now()
	pattern := insertPattern(database, m.CopyFrom, m.CopyFrom+schemas.LocalSuffix)
	return pollOpenInserts(ctx, m, opts, "server/query_id", func() (uint64, []string, error) {
		var running uint64
		var ids []string
		since := time.Since(began).Seconds()
		for _, h := range hosts {
			var n uint64
			var hostIDs []string
			if err := conn.QueryRow(ctx, "SELECT count(), groupArray(query_id) FROM "+remote(h.Addr, "system", "processes", user, password)+
				" WHERE elapsed >= ? AND match(query, ?)", since-2, pattern).Scan(&n, &hostIDs); err != nil {
				return 0, nil, fmt.Errorf("wait for the INSERTs into %s on %s: %w", m.CopyFrom, h.Addr, err)
			}
			running += n
			for _, id := range hostIDs {
				ids = append(ids, h.Addr+"/"+id)
			}
		}
		return running, ids, nil
	})
}

// credentials are the user and password of conn when Config opened it.
func credentials(conn driver.Conn) (user, password string) {
	if c, ok := conn.(*Conn); ok {
		return c.cfg.User, c.cfg.Password
	}
	return "default", ""
}

// remote is the table function that reads db.table on the server at
// addr. ClickHouse 18.16 has no clusterAllReplicas, and cluster() reads
// one replica per shard. The user and password are named only when they
// are not the default user's (then they are in the query's text, which
// system.processes and the query log show to whoever may read those).
func remote(addr, db, table, user, password string) string {
	args := []string{quote(addr), db, table}
	if (user != "" && user != "default") || password != "" {
		args = append(args, quote(user), quote(password))
	}
	return "remote(" + strings.Join(args, ", ") + ")"
}

// quote is a ClickHouse string literal.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// execRetrying runs stmt, again after a transient failure (Classify's
// FailureUnavailable), with exponential backoff for as long as ctx lives.
// A copy's INSERT carries the insert quorum of the connection, and on
// ClickHouse 18.16 a quorum insert fails at once (code 286) while another
// into the same table has not reached its quorum on any shard (a
// synchronous Distributed insert sends a block to every shard): the
// aggregators' own inserts, if they run during a migration, meet the
// copy's blocks constantly, so a bound on the attempts would fail the
// migration while they run. Running the statement again is harmless: the
// target folds identical rows. The migration's deadline (the Job's, or the
// caller's context) bounds the whole, and then the last failure is
// returned with it. Other transient failures (busy, out of memory, too
// slow) may be the statement's own doing and get copyRetries attempts.
// Every retry is logged.
func execRetrying(ctx context.Context, conn driver.Conn, stmt string, logger *slog.Logger) error {
	b := backoff.NewExponentialBackOff()
	b.MaxInterval = 10 * time.Second
	b.MaxElapsedTime = 0 // until ctx ends
	var last error
	bounded := 0 // attempts failed for a reason the statement itself may cause
	err := backoff.RetryNotify(func() error {
		err := conn.Exec(ctx, stmt)
		last = err
		switch {
		case err == nil:
			return nil
		case Classify(ctx, err) != FailureUnavailable:
			return backoff.Permanent(err)
		case !replicationCode(err):
			// Busy, out of memory, too slow: possibly this statement's
			// own doing (one month too large for max_memory_usage or
			// max_execution_time), so not retried without bound.
			if bounded++; bounded >= copyRetries {
				return backoff.Permanent(err)
			}
		}
		return err
	}, backoff.WithContext(b, ctx), func(err error, wait time.Duration) {
		logger.Warn("copy statement failed; retrying", "err", err, "in", wait.Round(time.Millisecond))
	})
	if err != nil && ctx.Err() != nil && last != nil && !errors.Is(err, last) {
		return errors.Join(last, err)
	}
	return err
}

// copyRetries bounds the attempts of a copy statement that fails for a
// reason other than the cluster's replication (replicationCode).
var copyRetries = 10

// replicationCode tells whether err is one of the answers of a cluster
// whose replicas or quorum are not ready yet, which end by themselves:
// a copy is retried on them for as long as its context lives.
func replicationCode(err error) bool {
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) {
		return true // the network: a server restarting
	}
	return clusterCodes[ex.Code]
}

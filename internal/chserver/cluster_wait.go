package chserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// WaitReplicated returns once every replica of the cluster is running,
// connected to ZooKeeper, sees all its peers active, and has fetched
// everything in its tables' replication logs (SYSTEM SYNC REPLICA on every
// Replicated table): after it, every replica of a shard holds the same
// rows. A fault test calls it after Restart, before reading one replica.
// It gives up when ctx is done, naming the replica that lagged.
func (c *Cluster) WaitReplicated(ctx context.Context) error {
	for s := range c.opts {
		for r := range c.opts[s] {
			if err := c.waitReplica(ctx, s, r); err != nil {
				return fmt.Errorf("clickhouse shard %d replica %d (%s) did not catch up: %w", s+1, r+1, c.Addr(s, r), err)
			}
		}
	}
	return nil
}

func (c *Cluster) waitReplica(ctx context.Context, s, r int) error {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{c.Addr(s, r)}, Protocol: clickhouse.Native, DialTimeout: time.Second,
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := syncReplica(ctx, conn)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// syncReplica checks one server's Replicated tables once: none read-only
// (no ZooKeeper session, or not yet registered as active after a restart),
// every peer active, then SYSTEM SYNC REPLICA on each.
func syncReplica(ctx context.Context, conn driver.Conn) error {
	rows, err := conn.Query(ctx, "SELECT database, table, is_readonly, is_session_expired, active_replicas, total_replicas FROM system.replicas")
	if err != nil {
		return err
	}
	var tables []string
	var problems []error
	for rows.Next() {
		var db, table string
		var readonly, expired, active, total uint8
		if err := rows.Scan(&db, &table, &readonly, &expired, &active, &total); err != nil {
			rows.Close()
			return err
		}
		name := db + "." + table
		switch {
		case readonly != 0 || expired != 0:
			problems = append(problems, fmt.Errorf("%s is read-only (no ZooKeeper session yet)", name))
		case active < total:
			problems = append(problems, fmt.Errorf("%s sees %d of %d replicas active", name, active, total))
		}
		tables = append(tables, "`"+strings.ReplaceAll(db, "`", "\\`")+"`.`"+strings.ReplaceAll(table, "`", "\\`")+"`")
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(problems) > 0 {
		return errors.Join(problems...)
	}
	for _, t := range tables {
		if err := conn.Exec(ctx, "SYSTEM SYNC REPLICA "+t); err != nil {
			return fmt.Errorf("SYSTEM SYNC REPLICA %s: %w", t, err)
		}
	}
	return nil
}

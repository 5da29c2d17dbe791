package aggregator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tally-oss/tally/internal/chclient"
)

// On a cluster a table is Distributed: each row goes to the shard its
// sharding key picks, and a shard's local table can refuse rows that the
// others take (an ALTER that ran on some shards only, a shard on another
// ClickHouse version during a rolling upgrade), with the same data error
// a bad value gets. A row written to one shard shows nothing about
// another, so the canary shows that every shard takes rows: one fixed row
// of canaryOrg per shard, with a customer id that the table's own
// sharding key sends there, written together with the last row written,
// in one insert (Distributed inserts are synchronous on a cluster,
// chclient: it fails when any shard refuses its row). See retry.go,
// "Only rows are parked, never the table".

// shardCanaryFinder is a Store whose tables may be sharded.
type shardCanaryFinder interface {
	// canaryCustomers returns a customer id of canaryOrg for each shard of
	// table that takes rows, or none when the table is not sharded.
	canaryCustomers(ctx context.Context, table string) ([]string, error)
}

// canaryCandidates is how many customer ids are tried to find one per
// shard. A shard that none reaches (a weight below a ten-thousandth of
// the total, say) leaves no canary: nothing is parked then.
const canaryCandidates = 10_000

// canaryCustomers reads the engine of table: when it is Distributed with a
// sharding key, it asks ClickHouse which shard the key sends
// (canaryOrg, "canary-<n>") to, as the Distributed engine does: the key
// modulo the total weight of the cluster's shards, taken in order, each
// for as many slots as its weight.
func (s *clickhouseStore) canaryCustomers(ctx context.Context, table string) ([]string, error) {
	var engine, full string
	if err := s.conn.QueryRow(ctx, `SELECT engine, engine_full FROM system.tables
		WHERE database = currentDatabase() AND name = ?`, table).Scan(&engine, &full); err != nil {
		return nil, refusedCanary(fmt.Errorf("read the engine of %s: %w", table, err))
	}
	if engine != "Distributed" {
		return nil, nil
	}
	args, err := engineArgs(full)
	if err != nil || len(args) < 3 {
		return nil, fmt.Errorf("%w: cannot read the cluster and sharding key of %s from %q", errNoCanary, table, full)
	}
	if len(args) < 4 {
		return nil, nil // no key: ClickHouse inserts only into a cluster of one shard
	}
	cluster, key := strings.Trim(args[0], "'`\""), args[3]
	shardWeights, err := chclient.ShardWeights(ctx, s.conn, cluster)
	if err != nil {
		return nil, refusedCanary(fmt.Errorf("read the shards of cluster %s: %w", cluster, err))
	}
	weights := make([]uint64, len(shardWeights))
	total := uint64(0)
	for i, w := range shardWeights {
		weights[i] = uint64(w)
		total += uint64(w)
	}
	taking := 0 // shards that get rows
	for _, w := range weights {
		if w > 0 {
			taking++
		}
	}
	if taking <= 1 {
		return nil, nil
	}
	// The key names the table's columns; only org_id and customer_id are
	// given, so a key over others fails here, and nothing is parked.
	slots, err := s.conn.Query(ctx, fmt.Sprintf(`SELECT customer_id, toUInt64((%s) %% %d)
		FROM (SELECT ? AS org_id, concat('canary-', toString(number)) AS customer_id FROM numbers(%d))`,
		key, total, canaryCandidates), canaryOrg)
	if err != nil {
		return nil, refusedCanary(fmt.Errorf("compute the shards of %s's canaries (key %s): %w", table, key, err))
	}
	defer slots.Close()
	out := make([]string, len(weights))
	found := 0
	for slots.Next() && found < taking {
		var customer string
		var slot uint64
		if err := slots.Scan(&customer, &slot); err != nil {
			return nil, fmt.Errorf("compute the shards of %s's canaries: %w", table, err)
		}
		shard := 0
		for slot >= weights[shard] {
			slot -= weights[shard]
			shard++
		}
		if out[shard] == "" {
			out[shard] = customer
			found++
		}
	}
	if err := slots.Err(); err != nil {
		return nil, refusedCanary(fmt.Errorf("compute the shards of %s's canaries: %w", table, err))
	}
	if found < taking {
		return nil, fmt.Errorf("%w: none of %d canary customers goes to some shard of %s", errNoCanary, canaryCandidates, table)
	}
	customers := make([]string, 0, found)
	for _, c := range out {
		if c != "" {
			customers = append(customers, c)
		}
	}
	return customers, nil
}

// refusedCanary marks an error the server answered (a key it cannot
// evaluate, a table it does not know) as no canary known: the write is
// then systemic, retried and reported, never parked. Other errors (the
// server unreachable) are retried as they are.
func refusedCanary(err error) error {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return fmt.Errorf("%w: %w", errNoCanary, err)
	}
	return err
}

// engineArgs splits the arguments of an engine_full such as
// "Distributed(cluster, db, table, cityHash64(a, b))" at its top-level
// commas.
func engineArgs(full string) ([]string, error) {
	open := strings.IndexByte(full, '(')
	if open < 0 {
		return nil, errors.New("no arguments")
	}
	var args []string
	depth, start := 0, open+1
	var quote byte
	for i := open + 1; i < len(full); i++ {
		c := full[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == ')':
			return append(args, strings.TrimSpace(full[start:i])), nil
		case c == ',' && depth == 0:
			args = append(args, strings.TrimSpace(full[start:i]))
			start = i + 1
		}
	}
	return nil, errors.New("unbalanced parentheses")
}

// shardCanaries caches canaryCustomers per table: the shards of a table
// do not change while the process runs (chclient refuses a changed
// layout at start).
type shardCanaries struct {
	mu    sync.Mutex
	known map[string][]string
}

func (c *shardCanaries) get(ctx context.Context, next Store, table string) ([]string, error) {
	finder, ok := next.(shardCanaryFinder)
	if !ok {
		return nil, nil
	}
	c.mu.Lock()
	customers, ok := c.known[table]
	c.mu.Unlock()
	if ok {
		return customers, nil
	}
	customers, err := finder.canaryCustomers(ctx, table)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.known == nil {
		c.known = map[string][]string{}
	}
	c.known[table] = customers
	c.mu.Unlock()
	return customers, nil
}

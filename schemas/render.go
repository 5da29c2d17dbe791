package schemas

import (
	"fmt"
	"regexp"
	"strings"
)

// Target is where a migration runs: a database of one server, or a
// database on every server of a ClickHouse cluster.
type Target struct {
	Database string
	// Cluster is the name of a cluster of the servers' remote_servers
	// configuration; "" is one server.
	Cluster string
}

// ClusterPattern restricts cluster names, which are identifiers in DDL
// (ON CLUSTER, Distributed) and cannot be bound as parameters.
var ClusterPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// LocalSuffix names the table on each server that holds a shard of a
// table in cluster mode: T's rows live in T_local.
const LocalSuffix = "_local"

var (
	shardByDirective = regexp.MustCompile(`(?m)^-- tally:shard-by (\S.*?)\s*$`)
	// The engine of a CREATE TABLE: a MergeTree of the family, with its
	// arguments when it has any.
	tableEngine = regexp.MustCompile(`\)\s*ENGINE = ([A-Za-z]*MergeTree)(\(([^()]*)\))?`)
)

// Render returns the statements that apply the migration m to t, in order
// (ClickHouse 18.16 runs one statement per query).
func (m Migration) Render(t Target) ([]string, error) {
	stmts, err := Render(m.SQL, t)
	if err != nil {
		return nil, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
	}
	return stmts, nil
}

// Render returns the statements that apply one statement of Tally's DDL
// (a CREATE TABLE, a CREATE MATERIALIZED VIEW ... TO, or an INSERT ...
// SELECT) to t. The DDL is written once, for one server; on a cluster
// (t.Cluster set) it becomes, after ClickHouse's recommendation for
// replicated and sharded tables:
//
//   - CREATE TABLE T: T_local ON CLUSTER, with the Replicated variant of
//     T's engine (its replicas found in ZooKeeper at
//     /clickhouse/tables/{shard}/<database>/T, each named by the {replica}
//     macro of its server), then T ON CLUSTER, a Distributed table over
//     T_local that sends each row to the shard of its key, the expression
//     of the statement's "-- tally:shard-by <expr>" directive. Every query
//     keeps naming T.
//   - CREATE MATERIALIZED VIEW V TO T AS SELECT ... FROM S: V ON CLUSTER,
//     from S_local to T_local: each server feeds its own shard of T with
//     the blocks inserted into its shard of S (so T and S must be sharded
//     by the same key: a row and its copy then fold on one shard).
//   - INSERT INTO T SELECT ... FROM S: the same statement, through the
//     Distributed tables (the runner, chclient.Migrate, reads the source
//     on each server instead).
//
// On one server (t.Cluster "") it is the statement with its tables
// qualified (QualifyTables), the DDL Tally always ran.
func Render(sql string, t Target) ([]string, error) {
	if !DatabasePattern.MatchString(t.Database) {
		return nil, fmt.Errorf("database name %q must match %s", t.Database, DatabasePattern)
	}
	if t.Cluster == "" {
		return []string{QualifyTables(sql, t.Database)}, nil
	}
	if !ClusterPattern.MatchString(t.Cluster) {
		return nil, fmt.Errorf("cluster name %q must match %s", t.Cluster, ClusterPattern)
	}
	db, onCluster := t.Database, " ON CLUSTER "+t.Cluster
	switch {
	case createTable.MatchString(sql):
		return renderClusterTable(sql, t)
	case createView.MatchString(sql):
		m := createView.FindStringSubmatchIndex(sql)
		view, target := sql[m[2]:m[3]], sql[m[4]:m[5]]
		head := "CREATE MATERIALIZED VIEW IF NOT EXISTS " + db + "." + view + onCluster + " TO " + db + "." + target + LocalSuffix
		rest := selectFrom.ReplaceAllString(sql[m[1]:], "FROM "+db+".${1}"+LocalSuffix+"${2}")
		return []string{sql[:m[0]] + head + rest}, nil
	case insertInto.MatchString(sql):
		return []string{QualifyTables(sql, db)}, nil
	}
	return nil, fmt.Errorf("cannot render for a cluster: not a CREATE TABLE, CREATE MATERIALIZED VIEW ... TO or INSERT INTO")
}

// renderClusterTable renders a CREATE TABLE for a cluster: the replicated
// local table, then the Distributed table over it.
func renderClusterTable(sql string, t Target) ([]string, error) {
	db, cluster := t.Database, t.Cluster
	name := createTable.FindStringSubmatch(sql)[1]
	key := shardByDirective.FindStringSubmatch(sql)
	if key == nil {
		return nil, fmt.Errorf("CREATE TABLE %s has no \"-- tally:shard-by <expr>\" directive: a cluster needs its sharding key", name)
	}
	engines := tableEngine.FindAllStringSubmatchIndex(sql, -1)
	if len(engines) != 1 {
		return nil, fmt.Errorf("CREATE TABLE %s: %d engine clauses of the MergeTree family, want one (\") ENGINE = ...MergeTree[(args)]\")", name, len(engines))
	}
	e := engines[0]
	if e[4] < 0 && strings.HasPrefix(sql[e[1]:], "(") {
		return nil, fmt.Errorf("CREATE TABLE %s: engine arguments with parentheses inside are not rendered", name)
	}
	args := "'/clickhouse/tables/{shard}/" + db + "/" + name + "', '{replica}'"
	if e[6] >= 0 && strings.TrimSpace(sql[e[6]:e[7]]) != "" {
		args += ", " + sql[e[6]:e[7]]
	}
	// The engine keyword starts where ") ENGINE = " ends.
	engineAt := e[2]
	local := sql[:engineAt] + "Replicated" + sql[e[2]:e[3]] + "(" + args + ")" + sql[e[1]:]
	local = createTable.ReplaceAllString(local, "CREATE TABLE IF NOT EXISTS "+db+".${1}"+LocalSuffix+" ON CLUSTER "+cluster)
	distributed := "CREATE TABLE IF NOT EXISTS " + db + "." + name + " ON CLUSTER " + cluster +
		" AS " + db + "." + name + LocalSuffix +
		"\nENGINE = Distributed(" + cluster + ", " + db + ", " + name + LocalSuffix + ", " + key[1] + ")"
	return []string{local, distributed}, nil
}

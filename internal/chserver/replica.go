package chserver

import (
	"fmt"
	"strings"
	"time"
)

// ReplicaConfig is what makes a server one replica of a cluster: the
// cluster's layout (remote_servers), where ZooKeeper runs, the macros that
// Replicated* table paths and ON CLUSTER DDL are written with, and the
// interserver port replicas fetch parts from each other on.
type ReplicaConfig struct {
	// Cluster is the name in remote_servers, the one DDL names in ON
	// CLUSTER and Distributed tables name as their first argument.
	Cluster string
	// Shards lists, per shard, the native address ("host:port") of every
	// replica, in the same order on every server.
	Shards [][]string
	// ZooKeeper lists ZooKeeper client addresses ("host:port").
	ZooKeeper []string
	// SessionTimeout is the ZooKeeper session timeout; 0 keeps
	// ClickHouse's default (30 s). A killed replica's is_active node lives
	// this long, and its restart waits for it to go.
	SessionTimeout time.Duration
	// Shard and Replica are the {shard} and {replica} macros. Replica names
	// only need to be unique within a shard.
	Shard, Replica string
	// InterserverPort is the interserver HTTP port (fixed: other replicas
	// learn it from ZooKeeper when they fetch parts).
	InterserverPort int
}

// write appends the cluster sections to a server config.
// internal_replication is true because the local tables are Replicated*:
// a Distributed insert then writes each block to one replica of its shard
// and replication copies it, instead of the Distributed table writing
// every replica itself (and doubling the rows).
func (r *ReplicaConfig) write(b *strings.Builder) {
	fmt.Fprintf(b, "  <interserver_http_port>%d</interserver_http_port>\n", r.InterserverPort)
	b.WriteString("  <interserver_http_host>127.0.0.1</interserver_http_host>\n")
	fmt.Fprintf(b, "  <remote_servers><%s>\n", esc(r.Cluster))
	for _, shard := range r.Shards {
		b.WriteString("    <shard><internal_replication>true</internal_replication>")
		for _, addr := range shard {
			host, port, _ := strings.Cut(addr, ":")
			fmt.Fprintf(b, "<replica><host>%s</host><port>%s</port></replica>", esc(host), esc(port))
		}
		b.WriteString("</shard>\n")
	}
	fmt.Fprintf(b, "  </%s></remote_servers>\n", esc(r.Cluster))
	b.WriteString("  <zookeeper>")
	for _, addr := range r.ZooKeeper {
		host, port, _ := strings.Cut(addr, ":")
		fmt.Fprintf(b, "<node><host>%s</host><port>%s</port></node>", esc(host), esc(port))
	}
	if r.SessionTimeout > 0 {
		fmt.Fprintf(b, "<session_timeout_ms>%d</session_timeout_ms>", r.SessionTimeout.Milliseconds())
	}
	b.WriteString("</zookeeper>\n")
	fmt.Fprintf(b, "  <macros><shard>%s</shard><replica>%s</replica></macros>\n", esc(r.Shard), esc(r.Replica))
	b.WriteString("  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>\n")
}

package main

// The ClickHouse and Keeper side of a deploy variant: the configuration its
// servers share, parsed from the XML the variant mounts, and the rules a
// cluster must follow for Tally's cluster mode.

import (
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// chServer is one ClickHouse server: its macros and native port.
type chServer struct {
	shard, replica string
	port           string
}

// fromEnv is a ClickHouse config value, literal or from_env="NAME".
type fromEnv struct {
	FromEnv string `xml:"from_env,attr"`
	Value   string `xml:",chardata"`
}

// resolve is the value a server with environment env sees.
func (v fromEnv) resolve(env map[string]string) string {
	if v.FromEnv != "" {
		return env[v.FromEnv]
	}
	return strings.TrimSpace(v.Value)
}

type chConfig struct {
	Macros struct {
		Shard   fromEnv `xml:"shard"`
		Replica fromEnv `xml:"replica"`
	} `xml:"macros"`
	Zookeeper []struct {
		Host string `xml:"host"`
		Port string `xml:"port"`
	} `xml:"zookeeper>node"`
	DistributedDDL string `xml:"distributed_ddl>path"`
	RemoteServers  struct {
		Clusters []chCluster `xml:",any"`
	} `xml:"remote_servers"`
}

// chCluster is one cluster of remote_servers.
type chCluster struct {
	XMLName xml.Name
	Shards  []struct {
		InternalReplication bool `xml:"internal_replication"`
		Replicas            []struct {
			Host string `xml:"host"`
			Port string `xml:"port"`
		} `xml:"replica"`
	} `xml:"shard"`
}

type keeperConfig struct {
	TCPPort  string  `xml:"keeper_server>tcp_port"`
	ServerID fromEnv `xml:"keeper_server>server_id"`
	Servers  []struct {
		ID       int    `xml:"id"`
		Hostname string `xml:"hostname"`
		Port     string `xml:"port"`
	} `xml:"keeper_server>raft_configuration>server"`
}

func parseXML[T any](t *testing.T, where string, data []byte) *T {
	t.Helper()
	v := new(T)
	if err := xml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return v
}

// checkClickHouse: in cluster mode, -clickhouse.cluster is a cluster of the
// servers' remote_servers, each of its servers is one of the variant's with
// macros that place it in its shard, and the aggregator's insert quorum is
// the replicas of a shard (chclient.CheckCluster refuses less at start).
// Without it, the variant has one ClickHouse server at most.
func (topo *topology) checkClickHouse(t *testing.T) {
	agg := topo.any("aggregator")
	if agg == nil {
		return
	}
	cluster, quorum := agg.get("clickhouse.cluster"), agg.getInt(t, "clickhouse.insert-quorum")
	if cluster == "" {
		if len(topo.clickhouse) > 1 {
			t.Errorf("%s: %d ClickHouse servers without -clickhouse.cluster: each would hold other rows", topo.where, len(topo.clickhouse))
		}
		return
	}
	if topo.chConfig == nil || len(topo.clickhouse) == 0 {
		t.Errorf("%s: -clickhouse.cluster=%s but the variant has no ClickHouse cluster configuration", topo.where, cluster)
		return
	}
	cfg := topo.chConfig
	if cfg.DistributedDDL == "" {
		t.Errorf("%s: no distributed_ddl path: ON CLUSTER migrations need it", topo.where)
	}
	i := slices.IndexFunc(cfg.RemoteServers.Clusters, func(c chCluster) bool { return c.XMLName.Local == cluster })
	if i < 0 {
		t.Errorf("%s: -clickhouse.cluster=%s is not in remote_servers", topo.where, cluster)
		return
	}
	listed := map[string]bool{}
	shardOfMacro := map[string]int{}
	for si, shard := range cfg.RemoteServers.Clusters[i].Shards {
		where := fmt.Sprintf("%s: cluster %s shard %d", topo.where, cluster, si+1)
		if !shard.InternalReplication {
			t.Errorf("%s: internal_replication must be true over Replicated tables (else every row is written to each replica by the Distributed table and again by replication)", where)
		}
		if n := len(shard.Replicas); quorum != n && (n > 1 || quorum > 1) {
			t.Errorf("%s: %d replicas but the aggregator's -clickhouse.insert-quorum is %d: read-your-writes on any replica needs every replica of a shard", where, n, quorum)
		}
		replicas := map[string]bool{}
		for _, r := range shard.Replicas {
			s, ok := topo.clickhouse[r.Host]
			switch {
			case !ok:
				t.Errorf("%s: replica %s is not a ClickHouse server of this variant", where, r.Host)
				continue
			case s.port != r.Port:
				t.Errorf("%s: replica %s port %s, the server's native port is %s", where, r.Host, r.Port, s.port)
			case listed[r.Host]:
				t.Errorf("%s: server %s is listed twice", where, r.Host)
			}
			listed[r.Host] = true
			if s.shard == "" || s.replica == "" {
				t.Errorf("%s: server %s has no {shard} or {replica} macro", where, r.Host)
			}
			if other, ok := shardOfMacro[s.shard]; ok && other != si {
				t.Errorf("%s: server %s has the shard macro %q of shard %d", where, r.Host, s.shard, other+1)
			}
			shardOfMacro[s.shard] = si
			if replicas[s.replica] {
				t.Errorf("%s: two servers have the replica macro %q", where, s.replica)
			}
			replicas[s.replica] = true
		}
	}
	for host := range topo.clickhouse {
		if !listed[host] {
			t.Errorf("%s: ClickHouse server %s is not in cluster %s", topo.where, host, cluster)
		}
	}
	topo.checkKeeper(t)
}

// checkKeeper: the servers' zookeeper section names the Keeper nodes, on
// their client port, and the nodes' raft configuration lists each of them
// with its own server id; an odd number, 3 at least, keeps a quorum with one
// node down.
func (topo *topology) checkKeeper(t *testing.T) {
	if len(topo.keepers) < 3 || len(topo.keepers)%2 == 0 {
		t.Errorf("%s: %d Keeper nodes, want an odd number, at least 3", topo.where, len(topo.keepers))
	}
	if topo.keeperConfig == nil {
		t.Errorf("%s: no Keeper configuration", topo.where)
		return
	}
	var zk []string
	for _, n := range topo.chConfig.Zookeeper {
		zk = append(zk, n.Host)
		if _, ok := topo.keepers[n.Host]; !ok || n.Port != topo.keeperConfig.TCPPort {
			t.Errorf("%s: zookeeper node %s:%s is not a Keeper node's client port (%s)", topo.where, n.Host, n.Port, topo.keeperConfig.TCPPort)
		}
	}
	raft := map[string]int{}
	for _, s := range topo.keeperConfig.Servers {
		raft[s.Hostname] = s.ID
	}
	for host, id := range topo.keepers {
		if !slices.Contains(zk, host) {
			t.Errorf("%s: Keeper node %s is not in the ClickHouse servers' zookeeper section", topo.where, host)
		}
		if got, ok := raft[host]; !ok || got != id {
			t.Errorf("%s: Keeper node %s runs as server id %d; raft_configuration has %v", topo.where, host, id, raft)
		}
	}
	if len(raft) != len(topo.keepers) {
		t.Errorf("%s: raft_configuration lists %d nodes, the variant runs %d", topo.where, len(raft), len(topo.keepers))
	}
}

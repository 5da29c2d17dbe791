package main

import (
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// topology is what a deploy variant runs, read from its files: Tally's
// processes and, when the variant brings them, its ClickHouse servers,
// ClickHouse Keeper nodes and Kafka brokers, each by the host name the
// others use for it.
type topology struct {
	where        string
	tally        []*tallyProc
	clickhouse   map[string]chServer
	chAliases    map[string]string // host -> port: Services in front of servers
	chConfig     *chConfig         // the configuration the ClickHouse servers share
	keepers      map[string]int    // host -> Keeper server id
	keeperConfig *keeperConfig
	kafka        map[string]kafkaBroker
}

// chServer is one ClickHouse server: its macros and native port.
type chServer struct {
	shard, replica string
	port           string
}

// kafkaBroker is one Kafka broker: its node id and settings (KAFKA_* of the
// apache/kafka image), and the host:port it advertises.
type kafkaBroker struct {
	nodeID     string
	env        map[string]string
	advertised string
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

// check holds a topology to the rules every variant shares.
func (topo *topology) check(t *testing.T) {
	t.Helper()
	if len(topo.tally) == 0 {
		t.Fatalf("%s: no Tally process found", topo.where)
	}
	byComponent := map[string]int{}
	for _, p := range topo.tally {
		byComponent[p.component]++
	}
	for _, c := range components {
		if byComponent[c] == 0 {
			t.Errorf("%s: no %s", topo.where, c)
		}
	}
	// Every process names the same topic, database and cluster: the
	// settings no component may see differently.
	for _, name := range []string{"kafka.topic", "kafka.dead-letter-topic", "kafka.partitions", "clickhouse.database", "clickhouse.cluster", "clickhouse.insert-quorum"} {
		seen := map[string][]string{}
		for _, p := range topo.tally {
			if hasFlag(p.component, name) {
				seen[p.get(name)] = append(seen[p.get(name)], p.where)
			}
		}
		if len(seen) > 1 {
			t.Errorf("%s: -%s differs between processes: %v", topo.where, name, seen)
		}
	}
	for _, p := range topo.tally {
		topo.checkAddresses(t, p)
	}
	topo.checkClickHouse(t)
	topo.checkKafka(t)
}

// checkAddresses: the brokers and ClickHouse servers a process names are
// the variant's own, on the ports they listen on.
func (topo *topology) checkAddresses(t *testing.T, p *tallyProc) {
	if len(topo.clickhouse) > 0 && hasFlag(p.component, "clickhouse.addr") {
		for _, hp := range hostPorts(t, p.where, p.get("clickhouse.addr")) {
			if port, ok := topo.chAliases[hp[0]]; ok && port == hp[1] {
				continue
			}
			if s, ok := topo.clickhouse[hp[0]]; !ok || s.port != hp[1] {
				t.Errorf("%s: -clickhouse.addr names %s:%s, not a ClickHouse server's native port of this variant", p.where, hp[0], hp[1])
			}
		}
	}
	if len(topo.kafka) > 0 && hasFlag(p.component, "kafka.brokers") {
		for _, hp := range hostPorts(t, p.where, p.get("kafka.brokers")) {
			if b, ok := topo.kafka[hp[0]]; !ok || b.advertised != hp[0]+":"+hp[1] {
				t.Errorf("%s: -kafka.brokers names %s:%s, not a listener a broker of this variant advertises", p.where, hp[0], hp[1])
			}
		}
	}
}

// any is one process of the component (they share the checked settings).
func (topo *topology) any(component string) *tallyProc {
	for _, p := range topo.tally {
		if p.component == component {
			return p
		}
	}
	return nil
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

// checkKafka: the aggregators fit the partitions, the topics' replication
// factor fits the brokers, an acknowledged record is on two brokers and one
// broker down keeps every partition writable, and the brokers agree with
// Tally and each other.
func (topo *topology) checkKafka(t *testing.T) {
	agg := topo.any("aggregator")
	if agg == nil {
		return
	}
	partitions := agg.getInt(t, "kafka.partitions")
	aggregators := 0
	for _, p := range topo.tally {
		if p.component == "aggregator" {
			aggregators += p.replicas
		}
	}
	if aggregators > partitions {
		t.Errorf("%s: %d aggregators for %d partitions: the others would hold nothing and stay not ready", topo.where, aggregators, partitions)
	}
	if len(topo.kafka) == 0 {
		return
	}
	rf := agg.getInt(t, "kafka.replication-factor")
	isr := agg.getInt(t, "kafka.min-insync-replicas")
	if isr == 0 {
		isr = min(2, rf)
	}
	if rf > len(topo.kafka) {
		t.Errorf("%s: -kafka.replication-factor=%d with %d brokers", topo.where, rf, len(topo.kafka))
	}
	if len(topo.kafka) > 1 && (isr < 2 || isr >= rf) {
		t.Errorf("%s: replication factor %d, min.insync.replicas %d: with several brokers an acknowledged record must be on 2 of them (min.insync.replicas >= 2) and one broker down must leave the topic writable (< replication factor)", topo.where, rf, isr)
	}
	var voters []string
	for host, b := range topo.kafka {
		voters = append(voters, b.nodeID+"@"+host+":9093")
		if got := b.env["KAFKA_MIN_INSYNC_REPLICAS"]; len(topo.kafka) > 1 && got != strconv.Itoa(isr) {
			t.Errorf("%s: broker %s min.insync.replicas %q, Tally's topics %d", topo.where, host, got, isr)
		}
		if got := b.env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"]; got == "true" {
			t.Errorf("%s: broker %s allows unclean leader election: Tally's readiness refuses it", topo.where, host)
		}
		if got := b.env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]; got != "" && got != strconv.Itoa(min(3, len(topo.kafka))) {
			t.Errorf("%s: broker %s offsets topic replication factor %s with %d brokers: the group's commits must survive a broker", topo.where, host, got, len(topo.kafka))
		}
	}
	slices.Sort(voters)
	for host, b := range topo.kafka {
		got := strings.Split(b.env["KAFKA_CONTROLLER_QUORUM_VOTERS"], ",")
		slices.Sort(got)
		if !slices.Equal(got, voters) {
			t.Errorf("%s: broker %s has controller voters %v, the brokers are %v", topo.where, host, got, voters)
		}
	}
}

package main

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tally-oss/tally/query"
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
	// tallyHosts are the host:port addresses that reach a Tally process's
	// listener (a compose service, a Kubernetes Service), by component.
	tallyHosts map[string]string
}

// kafkaBroker is one Kafka broker: its node id and settings (KAFKA_* of the
// apache/kafka image), and the host:port it advertises.
type kafkaBroker struct {
	nodeID     string
	env        map[string]string
	advertised string
}

// check holds a topology to the rules every variant shares.
func (topo *topology) check(t *testing.T) {
	t.Helper()
	if len(topo.tally) == 0 {
		t.Fatalf("%s: no Tally process found", topo.where)
	}
	byComponent := map[string]int{}
	for _, p := range topo.tally {
		byComponent[p.component] += p.replicas
	}
	for _, c := range components {
		if byComponent[c] == 0 {
			t.Errorf("%s: no %s", topo.where, c)
		}
	}
	// A cluster variant scales every component out: no single process
	// stops ingest, metering or queries.
	if agg := topo.any("aggregator"); agg != nil && agg.get("clickhouse.cluster") != "" {
		for _, c := range []string{"ingest", "aggregator", "query"} {
			if byComponent[c] < 2 {
				t.Errorf("%s: %d %s in cluster mode, want 2 or more", topo.where, byComponent[c], c)
			}
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
	topo.checkStatusComponents(t)
}

// checkStatusComponents: every query process's status probes the
// variant's ingest and aggregator processes, each on the /readyz of an
// address that reaches it, and every address of them is probed.
func (topo *topology) checkStatusComponents(t *testing.T) {
	for _, p := range topo.tally {
		if p.component != "query" {
			continue
		}
		var list query.StatusComponents
		if err := list.Set(p.get("query.status-components")); err != nil {
			t.Errorf("%s: -query.status-components: %v", p.where, err)
			continue
		}
		probed := map[string]bool{}
		for _, c := range list {
			u, err := url.Parse(c.URL)
			if err != nil {
				t.Errorf("%s: status component %s: %v", p.where, c.Name, err)
				continue
			}
			component, ok := topo.tallyHosts[u.Host]
			switch {
			case !ok || u.Path != "/readyz":
				t.Errorf("%s: status component %s is %s, not the /readyz of a Tally process of this variant (%v)", p.where, c.Name, c.URL, topo.tallyHosts)
			case !strings.HasPrefix(c.Name, component):
				t.Errorf("%s: status component %s is a %s", p.where, c.Name, component)
			}
			probed[u.Host] = true
		}
		for host, component := range topo.tallyHosts {
			if (component == "ingest" || component == "aggregator") && !probed[host] {
				t.Errorf("%s: the status does not report the %s at %s", p.where, component, host)
			}
		}
	}
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

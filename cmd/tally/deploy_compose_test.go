package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFiles are the compose variants; each is checked by the same rules.
var composeFiles = []string{"docker-compose.yml", "docker-compose.cluster.yml"}

// repoRoot is where the compose files resolve their relative paths.
const repoRoot = "../.."

type composeService struct {
	Image       string              `yaml:"image"`
	Build       map[string]any      `yaml:"build"`
	Command     []string            `yaml:"command"`
	Environment map[string]any      `yaml:"environment"`
	Ports       []string            `yaml:"ports"`
	DependsOn   any                 `yaml:"depends_on"`
	Volumes     []string            `yaml:"volumes"`
	Restart     string              `yaml:"restart"`
	Healthcheck *composeHealthcheck `yaml:"healthcheck"`
}

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

func readCompose(t *testing.T, name string) *composeFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &f
}

// env is the service's environment as strings (compose allows numbers).
func (s composeService) env() map[string]string {
	m := map[string]string{}
	for k, v := range s.Environment {
		m[k] = fmt.Sprint(v)
	}
	return m
}

// isTally: the service runs the image of deploy/Dockerfile.
func (s composeService) isTally() bool {
	return s.Build != nil && s.Build["dockerfile"] == "deploy/Dockerfile"
}

// containerPorts are the container sides of the published ports.
func (s composeService) containerPorts() []string {
	var out []string
	for _, p := range s.Ports {
		out = append(out, p[strings.LastIndex(p, ":")+1:])
	}
	return out
}

// bindMount returns the host file or directory mounted at target, if any.
func (s composeService) bindMount(target string) (string, bool) {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.HasPrefix(parts[0], ".") && parts[1] == target {
			return parts[0], true
		}
	}
	return "", false
}

func readRepoFile(t *testing.T, where, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return data
}

// Every Tally service of every compose file runs a subcommand with flags and
// TALLY_* variables the code has, with values it accepts, publishes the port
// it listens on, and names brokers and ClickHouse servers of the same file;
// the cluster variant's ClickHouse, Keeper and Kafka agree with Tally's
// cluster settings (deploy_topology_test.go). Images are pinned, every
// healthcheck can run (deploy_compose_health_test.go), every depends_on
// condition can be met, Prometheus scrapes each Tally service and Grafana's
// provisioning resolves (deploy_grafana_test.go).
func TestComposeFilesMatchTheCode(t *testing.T) {
	for _, name := range composeFiles {
		t.Run(name, func(t *testing.T) {
			f := readCompose(t, name)
			topo, procs := composeTopology(t, name, f)
			topo.check(t)
			checkComposeWiring(t, name, f)
			checkComposePrometheus(t, name, f, procs)
			// Every service of the main file has a healthcheck; the
			// cluster's Keeper nodes have none (nothing waits on them).
			checkComposeHealth(t, name, f, procs, name == "docker-compose.yml")
			checkComposeGrafana(t, name, f)
			checkComposeEnvironment(t, name, f, procs)
		})
	}
}

// composeTopology reads a compose file's topology; procs holds its Tally
// processes by service.
func composeTopology(t *testing.T, name string, f *composeFile) (topo *topology, procs map[string]*tallyProc) {
	topo = &topology{where: name, clickhouse: map[string]chServer{}, keepers: map[string]int{}, kafka: map[string]kafkaBroker{}, tallyHosts: map[string]string{}}
	procs = map[string]*tallyProc{}
	for svcName, s := range f.Services {
		where := name + " service " + svcName
		switch {
		case s.isTally():
			p := newTallyProc(t, where, s.Command, s.env())
			if p == nil {
				continue
			}
			if port := p.listenPort(t); port != "" && !slices.Contains(s.containerPorts(), port) {
				t.Errorf("%s: listens on %s but publishes %v", where, port, s.Ports)
			}
			if port := p.listenPort(t); port != "" {
				topo.tallyHosts[svcName+":"+port] = p.component
			}
			topo.tally = append(topo.tally, p)
			procs[svcName] = p
		case strings.HasPrefix(s.Image, "clickhouse/clickhouse-server:"):
			server := chServer{port: "9000"}
			if src, ok := s.bindMount("/etc/clickhouse-server/config.d/tally-cluster.xml"); ok {
				cfg := parseXML[chConfig](t, where, readRepoFile(t, where, src))
				if topo.chConfig != nil && !reflect.DeepEqual(topo.chConfig, cfg) {
					t.Errorf("%s: its cluster configuration differs from the other servers'", where)
				}
				topo.chConfig = cfg
				server.shard, server.replica = cfg.Macros.Shard.resolve(s.env()), cfg.Macros.Replica.resolve(s.env())
			}
			topo.clickhouse[svcName] = server
		case strings.HasPrefix(s.Image, "clickhouse/clickhouse-keeper:"):
			src, ok := s.bindMount("/etc/clickhouse-keeper/keeper_config.xml")
			if !ok {
				t.Errorf("%s: no keeper_config.xml mounted", where)
				continue
			}
			cfg := parseXML[keeperConfig](t, where, readRepoFile(t, where, src))
			topo.keeperConfig = cfg
			var id int
			if _, err := fmt.Sscan(cfg.ServerID.resolve(s.env()), &id); err != nil {
				t.Errorf("%s: server id: %v", where, err)
			}
			topo.keepers[svcName] = id
		case strings.HasPrefix(s.Image, "apache/kafka:"):
			env := s.env()
			adv, _ := strings.CutPrefix(env["KAFKA_ADVERTISED_LISTENERS"], "PLAINTEXT://")
			topo.kafka[svcName] = kafkaBroker{nodeID: env["KAFKA_NODE_ID"], env: env, advertised: adv}
		}
	}
	return topo, procs
}

// checkComposeWiring: depends_on names services, bind mounts exist in the
// repository and named volumes are declared.
func checkComposeWiring(t *testing.T, name string, f *composeFile) {
	for svcName, s := range f.Services {
		where := name + " service " + svcName
		var deps []string
		switch d := s.DependsOn.(type) {
		case []any:
			for _, v := range d {
				deps = append(deps, fmt.Sprint(v))
			}
		case map[string]any:
			for k := range d {
				deps = append(deps, k)
			}
		}
		for _, d := range deps {
			if _, ok := f.Services[d]; !ok {
				t.Errorf("%s: depends on %q, which is not a service", where, d)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
					t.Errorf("%s: mounts %s: %v", where, src, err)
				}
			} else if _, ok := f.Volumes[src]; !ok {
				t.Errorf("%s: volume %q is not declared under volumes", where, src)
			}
		}
	}
}

// checkComposePrometheus: Prometheus scrapes every ingest, aggregator and
// query service on its listening port, and nothing else.
func checkComposePrometheus(t *testing.T, name string, f *composeFile, procs map[string]*tallyProc) {
	prom, ok := f.Services["prometheus"]
	if !ok {
		return
	}
	src, ok := prom.bindMount("/etc/prometheus/prometheus.yml")
	if !ok {
		if dir, ok := prom.bindMount("/etc/prometheus"); ok {
			src = filepath.Join(dir, "prometheus.yml")
		} else {
			t.Fatalf("%s: prometheus has no prometheus.yml mounted", name)
		}
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readRepoFile(t, name, src), &cfg); err != nil {
		t.Fatalf("%s: %s: %v", name, src, err)
	}
	var targets []string
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	var want []string
	for svcName, p := range procs {
		if port := p.listenPort(t); port != "" {
			want = append(want, svcName+":"+port)
		}
	}
	slices.Sort(targets)
	slices.Sort(want)
	if !slices.Equal(targets, want) {
		t.Errorf("%s: %s scrapes %v, the Tally services listen on %v", name, src, targets, want)
	}
	for _, rf := range cfg.RuleFiles {
		if _, ok := prom.bindMount(rf); !ok {
			if _, ok := prom.bindMount(filepath.Dir(rf)); !ok {
				t.Errorf("%s: rule file %s is not mounted into prometheus", name, rf)
			}
		}
	}
}

package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// kustomizations are the Kubernetes variants: the base (Kafka and
// ClickHouse from the platform) and the cluster overlay, which adds Keeper,
// a 2 x 2 ClickHouse and three Kafka brokers.
var kustomizations = []string{"deploy/kubernetes", "deploy/kubernetes-cluster"}

// Every Tally container of every variant runs a subcommand with flags and
// TALLY_* variables (its own and the ConfigMap's) the code has and accepts,
// exposes and probes the port it listens on, and references ConfigMaps,
// Secrets, Services and ports that exist; the cluster overlay's ClickHouse,
// Keeper and Kafka agree with Tally's cluster settings
// (deploy_topology_test.go), as docker-compose.cluster.yml's do.
func TestKubernetesManifestsMatchTheCode(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			k := newKube(t, dir)
			topo := k.topology(t)
			topo.check(t)
			k.checkReferences(t)
		})
	}
}

type kube struct {
	dir  string
	objs []obj
	byID map[string]obj
}

func newKube(t *testing.T, dir string) *kube {
	k := &kube{dir: dir, objs: loadKustomization(t, dir), byID: map[string]obj{}}
	for _, o := range k.objs {
		if _, dup := k.byID[o.id()]; dup {
			t.Errorf("%s: %s defined twice", dir, o.id())
		}
		k.byID[o.id()] = o
	}
	return k
}

// workloads are the objects with a pod template.
func (k *kube) workloads() []obj {
	var out []obj
	for _, o := range k.objs {
		if slices.Contains([]string{"Deployment", "StatefulSet", "Job"}, o.kind()) {
			out = append(out, o)
		}
	}
	return out
}

// replicas of a workload: spec.replicas, or an HPA's minimum.
func (k *kube) replicas(w obj) int {
	for _, o := range k.objs {
		if o.kind() == "HorizontalPodAutoscaler" && str(o, "spec", "scaleTargetRef", "name") == w.name() {
			n, _ := at(o, "spec", "minReplicas").(int)
			return n
		}
	}
	if n, ok := at(w, "spec", "replicas").(int); ok {
		return n
	}
	return 1
}

// containerEnv is a container's environment: its ConfigMaps (envFrom), then
// its own variables; secrets read as their placeholder values.
func (k *kube) containerEnv(t *testing.T, where string, c any) map[string]string {
	env := map[string]string{}
	for _, ef := range list(c, "envFrom") {
		name := str(ef, "configMapRef", "name")
		cm, ok := k.byID["ConfigMap/"+name]
		if !ok {
			t.Errorf("%s: envFrom ConfigMap %s does not exist", where, name)
		}
		for key, v := range dict(cm, "data") {
			env[key] = fmt.Sprint(v)
		}
	}
	for _, e := range list(c, "env") {
		name := str(e, "name")
		switch ref := dict(e, "valueFrom", "secretKeyRef"); {
		case ref != nil:
			v, ok := dict(k.byID["Secret/"+str(ref, "name")], "stringData")[str(ref, "key")]
			if !ok && str(ref, "optional") != "true" {
				t.Errorf("%s: %s reads key %s of Secret %s, which has no such key", where, name, str(ref, "key"), str(ref, "name"))
			}
			if ok {
				env[name] = fmt.Sprint(v)
			}
		case at(e, "valueFrom") == nil:
			env[name] = str(e, "value")
		}
	}
	return env
}

// containerPorts are a container's ports by name.
func containerPorts(c any) map[string]string {
	m := map[string]string{}
	for _, p := range list(c, "ports") {
		m[str(p, "name")] = str(p, "containerPort")
	}
	return m
}

var (
	keeperIDFromOrdinal = regexp.MustCompile(`KEEPER_SERVER_ID=\$\(\( \$\{HOSTNAME##\*-\} \+ 1 \)\)`)
	kafkaIDFromOrdinal  = regexp.MustCompile(`KAFKA_NODE_ID=\$\{HOSTNAME##\*-\}`)
	kafkaAdvertised     = regexp.MustCompile(`KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://(\S+?);`)
)

// topology reads the variant's Tally processes and, from its StatefulSets,
// its ClickHouse servers, Keeper nodes and Kafka brokers by pod DNS name
// (<pod>.<service>).
func (k *kube) topology(t *testing.T) *topology {
	topo := &topology{where: k.dir, clickhouse: map[string]chServer{}, chAliases: map[string]string{}, keepers: map[string]int{}, kafka: map[string]kafkaBroker{},
		tallyHosts: map[string]string{}}
	for _, w := range k.workloads() {
		for _, c := range list(w, "spec", "template", "spec", "containers") {
			where := fmt.Sprintf("%s %s container %s", k.dir, w.id(), str(c, "name"))
			image := str(c, "image")
			switch {
			case image == "tally":
				var args []string
				for _, a := range list(c, "args") {
					args = append(args, fmt.Sprint(a))
				}
				p := newTallyProc(t, where, args, k.containerEnv(t, where, c))
				if p == nil {
					continue
				}
				p.replicas = k.replicas(w)
				k.checkListener(t, where, w, c, p)
				topo.tally = append(topo.tally, p)
			case w.kind() == "StatefulSet":
				k.addStatefulSet(t, where, topo, w, c)
			}
		}
	}
	// A Service in front of a Tally workload reaches its listener (by the
	// Service's short name: Tally's objects share one namespace).
	for _, o := range k.objs {
		if o.kind() != "Service" {
			continue
		}
		for _, w := range k.workloads() {
			for _, c := range list(w, "spec", "template", "spec", "containers") {
				args := list(c, "args")
				if str(c, "image") != "tally" || len(args) == 0 || !selects(dict(o, "spec", "selector"), w) {
					continue
				}
				for _, sp := range list(o, "spec", "ports") {
					// A headless Service's name resolves to the pods: their
					// port, not the Service's.
					port := str(sp, "port")
					if str(o, "spec", "clusterIP") == "None" {
						if port = str(sp, "targetPort"); containerPorts(c)[port] != "" {
							port = containerPorts(c)[port]
						}
					}
					topo.tallyHosts[o.name()+":"+port] = fmt.Sprint(args[0])
				}
			}
		}
	}
	// Services in front of ClickHouse servers are addresses Tally may use.
	for _, o := range k.objs {
		if o.kind() == "Service" && str(o, "spec", "clusterIP") != "None" && str(o, "spec", "selector", "app.kubernetes.io/name") == "clickhouse" {
			for _, p := range list(o, "spec", "ports") {
				topo.chAliases[o.name()] = str(p, "port")
			}
		}
	}
	return topo
}

// addStatefulSet adds each pod of a ClickHouse, Keeper or Kafka StatefulSet.
func (k *kube) addStatefulSet(t *testing.T, where string, topo *topology, w obj, c any) {
	svc, n := str(w, "spec", "serviceName"), k.replicas(w)
	image := str(c, "image")
	command := strings.Join(func() []string {
		var s []string
		for _, a := range list(c, "command") {
			s = append(s, fmt.Sprint(a))
		}
		return s
	}(), " ")
	for i := range n {
		pod := fmt.Sprintf("%s-%d", w.name(), i)
		host := pod + "." + svc
		env := k.containerEnv(t, where, c)
		env["POD_NAME"] = pod
		for name, v := range env {
			env[name] = strings.ReplaceAll(v, "$(POD_NAME)", pod)
		}
		switch {
		case strings.HasPrefix(image, "clickhouse/clickhouse-server:"):
			server := chServer{port: containerPorts(c)["native"]}
			if data, ok := k.mountedFile(t, where, w, c, "/etc/clickhouse-server/config.d/tally-cluster.xml"); ok {
				cfg := parseXML[chConfig](t, where, data)
				topo.chConfig = cfg
				server.shard, server.replica = cfg.Macros.Shard.resolve(env), cfg.Macros.Replica.resolve(env)
			}
			topo.clickhouse[host] = server
		case strings.HasPrefix(image, "clickhouse/clickhouse-keeper:"):
			if data, ok := k.mountedFile(t, where, w, c, "/etc/clickhouse-keeper/keeper_config.xml"); ok {
				topo.keeperConfig = parseXML[keeperConfig](t, where, data)
			}
			if !keeperIDFromOrdinal.MatchString(command) {
				t.Errorf("%s: the command must set KEEPER_SERVER_ID to the pod ordinal + 1: %q", where, command)
			}
			topo.keepers[host] = i + 1
		case strings.HasPrefix(image, "apache/kafka:"):
			m := kafkaAdvertised.FindStringSubmatch(command)
			if !kafkaIDFromOrdinal.MatchString(command) || m == nil {
				t.Errorf("%s: the command must set KAFKA_NODE_ID to the pod ordinal and KAFKA_ADVERTISED_LISTENERS: %q", where, command)
				continue
			}
			topo.kafka[host] = kafkaBroker{nodeID: fmt.Sprint(i), env: env, advertised: strings.ReplaceAll(m[1], "${HOSTNAME}", pod)}
		}
	}
	if s, ok := k.byID["Service/"+svc]; !ok || str(s, "spec", "clusterIP") != "None" {
		t.Errorf("%s: serviceName %s is not a headless Service", where, svc)
	}
}

// mountedFile is the ConfigMap key mounted (by subPath) at path.
func (k *kube) mountedFile(t *testing.T, where string, w obj, c any, path string) ([]byte, bool) {
	for _, m := range list(c, "volumeMounts") {
		if str(m, "mountPath") != path {
			continue
		}
		for _, v := range list(w, "spec", "template", "spec", "volumes") {
			if str(v, "name") == str(m, "name") {
				data, ok := dict(k.byID["ConfigMap/"+str(v, "configMap", "name")], "data")[str(m, "subPath")]
				if !ok {
					t.Errorf("%s: %s: ConfigMap %s has no key %s", where, path, str(v, "configMap", "name"), str(m, "subPath"))
					return nil, false
				}
				return []byte(fmt.Sprint(data)), true
			}
		}
	}
	t.Errorf("%s: nothing mounted at %s", where, path)
	return nil, false
}

// checkListener: the port Tally listens on is a named container port, the
// probes and Prometheus's annotation use it.
func (k *kube) checkListener(t *testing.T, where string, w obj, c any, p *tallyProc) {
	port := p.listenPort(t)
	if port == "" {
		return
	}
	ports := containerPorts(c)
	name := ""
	for n, cp := range ports {
		if cp == port {
			name = n
		}
	}
	if name == "" {
		t.Errorf("%s: listens on %s, not a container port (%v)", where, port, ports)
	}
	for _, probe := range []string{"startupProbe", "livenessProbe", "readinessProbe"} {
		if got := str(c, probe, "httpGet", "port"); got != name && got != port {
			t.Errorf("%s: %s probes port %s, Tally listens on %s (%s)", where, probe, got, port, name)
		}
	}
	if got := str(w, "spec", "template", "metadata", "annotations", "prometheus.io/port"); got != port {
		t.Errorf("%s: prometheus.io/port %q, Tally listens on %s", where, got, port)
	}
}

// selects reports whether selector's labels are all on the workload's pods.
func selects(selector map[string]any, w obj) bool {
	labels := dict(w, "spec", "template", "metadata", "labels")
	for k, v := range selector {
		if fmt.Sprint(labels[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return len(selector) > 0
}

// checkReferences: Services, PodDisruptionBudgets, HPAs and the Ingress
// point at workloads and ports that exist.
func (k *kube) checkReferences(t *testing.T) {
	for _, o := range k.objs {
		where := k.dir + " " + o.id()
		switch o.kind() {
		case "Service", "PodDisruptionBudget":
			sel := dict(o, "spec", "selector")
			if o.kind() == "PodDisruptionBudget" {
				sel = dict(o, "spec", "selector", "matchLabels")
			}
			var pods []obj
			for _, w := range k.workloads() {
				if selects(sel, w) {
					pods = append(pods, w)
				}
			}
			if len(pods) == 0 {
				t.Errorf("%s: selects no pods (%v)", where, sel)
			}
			for _, p := range list(o, "spec", "ports") {
				target := str(p, "targetPort")
				for _, w := range pods {
					found := false
					for _, c := range list(w, "spec", "template", "spec", "containers") {
						for n, cp := range containerPorts(c) {
							found = found || n == target || cp == target
						}
					}
					if !found {
						t.Errorf("%s: targetPort %s is not a port of %s", where, target, w.id())
					}
				}
			}
		case "HorizontalPodAutoscaler":
			if _, ok := k.byID[str(o, "spec", "scaleTargetRef", "kind")+"/"+str(o, "spec", "scaleTargetRef", "name")]; !ok {
				t.Errorf("%s: scales %s, which does not exist", where, str(o, "spec", "scaleTargetRef", "name"))
			}
		case "Ingress":
			for _, r := range list(o, "spec", "rules") {
				for _, p := range list(r, "http", "paths") {
					name, port := str(p, "backend", "service", "name"), str(p, "backend", "service", "port", "name")
					svc, ok := k.byID["Service/"+name]
					if !ok || !slices.ContainsFunc(list(svc, "spec", "ports"), func(sp any) bool { return str(sp, "name") == port }) {
						t.Errorf("%s: backend %s port %s does not exist", where, name, port)
					}
				}
			}
		}
	}
}

package main

// The deploy files (docker-compose.yml, docker-compose.cluster.yml,
// deploy/kubernetes and its cluster overlay) name Tally's flags, ports and
// hosts, and the cluster variants also the ClickHouse, Keeper and Kafka
// topology that Tally's settings must match. No Docker engine or Kubernetes
// runs here, so these tests parse the files: deploy_compose_test.go and
// deploy_kubernetes_test.go read each format into a topology, and the checks
// below hold every variant, single node or cluster, to the same rules.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tally-oss/tally/internal/chclient"
	"github.com/tally-oss/tally/internal/config"
	"github.com/tally-oss/tally/internal/kafkaclient"
)

// components are the subcommands a deployment runs; each has a flag set of
// its own.
var components = []string{"ingest", "aggregator", "query", "migrate"}

// listenFlag is the flag of a component's HTTP listener (migrate has none).
var listenFlag = map[string]string{
	"ingest":     "ingest.listen-addr",
	"aggregator": "aggregator.listen-addr",
	"query":      "query.listen-addr",
}

var (
	acceptsMu    sync.Mutex
	acceptsCache = map[string]error{}
)

// commandAccepts parses args with the component's own flag set, as `tally
// <component> args...` would, stopping at -h before anything runs: nil when
// every flag exists for that component and its value parses.
func commandAccepts(component string, args ...string) error {
	key := component + "\x00" + strings.Join(args, "\x00")
	acceptsMu.Lock()
	defer acceptsMu.Unlock()
	if err, ok := acceptsCache[key]; ok {
		return err
	}
	// The flag set prints its usage on -h and on an error; keep it out of
	// the test's output (no test of this package runs in parallel).
	stderr := os.Stderr
	if devNull, err := os.Open(os.DevNull); err == nil {
		os.Stderr = devNull
		defer func() { os.Stderr = stderr; devNull.Close() }()
	}
	err := fmt.Errorf("no command %q", component)
	for _, c := range commands {
		if c.name == component {
			err = c.run(context.Background(), append(slices.Clone(args), "-h"))
			if errors.Is(err, flag.ErrHelp) {
				err = nil
			} else if err == nil {
				err = errors.New("ran instead of stopping at -h")
			}
		}
	}
	acceptsCache[key] = err
	return err
}

// hasFlag reports whether component has the flag name.
func hasFlag(component, name string) bool {
	f, ok := allFlagSets()[name]
	return ok && commandAccepts(component, "-"+name+"="+f.DefValue) == nil
}

// flagOfEnv maps every TALLY_* override to its flag.
func flagOfEnv() map[string]string {
	m := map[string]string{}
	for name := range allFlagSets() {
		if flagHasEnv(name) {
			m[config.EnvName(name)] = name
		}
	}
	return m
}

// tallyProc is one Tally process of a deployment: its component and the
// settings it runs with (flags from its arguments and TALLY_* environment,
// by flag name), as parseFlags would see them.
type tallyProc struct {
	where     string // file and service or container, for messages
	component string
	settings  map[string]string
	replicas  int // processes run with these settings (a Deployment's replicas)
}

// newTallyProc checks a Tally container's arguments and environment against
// the code and returns the process. args[0] is the subcommand; env holds
// the container's variables (values of secrets as placeholders).
func newTallyProc(t *testing.T, where string, args []string, env map[string]string) *tallyProc {
	t.Helper()
	if len(args) == 0 || !slices.Contains(components, args[0]) {
		t.Errorf("%s: runs %q, want one of the subcommands %v", where, args, components)
		return nil
	}
	p := &tallyProc{where: where, component: args[0], settings: map[string]string{}, replicas: 1}
	byEnv := flagOfEnv()
	for name, value := range env {
		if !strings.HasPrefix(name, config.EnvPrefix) {
			continue
		}
		f, ok := byEnv[name]
		if !ok {
			t.Errorf("%s: %s is not the override of any flag of tally", where, name)
			continue
		}
		// A component ignores the overrides of flags it does not have, so
		// one shared environment serves every component.
		if hasFlag(p.component, f) {
			if err := commandAccepts(p.component, "-"+f+"="+value); err != nil {
				t.Errorf("%s: %s=%q: %v", where, name, value, err)
			}
			p.settings[f] = value
		}
	}
	// Flags on the command line win over the environment (config.ApplyEnv).
	for _, a := range args[1:] {
		name, value, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || !ok {
			t.Errorf("%s: argument %q: write flags as -name=value", where, a)
			continue
		}
		if err := commandAccepts(p.component, a); err != nil {
			t.Errorf("%s: tally %s %s: %v", where, p.component, a, err)
			continue
		}
		p.settings[name] = value
	}
	if err := p.validate(); err != nil {
		t.Errorf("%s: settings refused by the code: %v", where, err)
	}
	return p
}

// get is the effective value of a flag: set, else its default.
func (p *tallyProc) get(name string) string {
	if v, ok := p.settings[name]; ok {
		return v
	}
	return allFlagSets()[name].DefValue
}

func (p *tallyProc) getInt(t *testing.T, name string) int {
	n, err := strconv.Atoi(p.get(name))
	if err != nil {
		t.Errorf("%s: -%s=%q is not a number", p.where, name, p.get(name))
	}
	return n
}

// validate runs the ClickHouse and Kafka settings through the code's own
// Validate, which the process would run at start.
func (p *tallyProc) validate() error {
	fs := flag.NewFlagSet(p.where, flag.ContinueOnError)
	var ch chclient.Config
	var kafka kafkaclient.Config
	ch.RegisterFlags(fs)
	kafka.RegisterFlags(fs)
	var errs []error
	for name, value := range p.settings {
		if fs.Lookup(name) != nil {
			errs = append(errs, fs.Set(name, value))
		}
	}
	errs = append(errs, ch.Validate())
	if hasFlag(p.component, "kafka.brokers") {
		errs = append(errs, kafka.Validate())
	}
	return errors.Join(errs...)
}

// listenPort is the port of the component's HTTP listener; it must listen
// on every interface, or nothing outside its container reaches it.
func (p *tallyProc) listenPort(t *testing.T) string {
	f, ok := listenFlag[p.component]
	if !ok {
		return ""
	}
	host, port, err := net.SplitHostPort(p.get(f))
	if err != nil {
		t.Errorf("%s: -%s=%q: %v", p.where, f, p.get(f), err)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("%s: -%s=%q listens on %s only; a container must listen on every interface (:%s)", p.where, f, p.get(f), host, port)
	}
	return port
}

// hostPorts splits a comma-separated list of host:port.
func hostPorts(t *testing.T, where, list string) [][2]string {
	var out [][2]string
	for _, hp := range strings.Split(list, ",") {
		h, p, err := net.SplitHostPort(strings.TrimSpace(hp))
		if err != nil {
			t.Errorf("%s: %q: %v", where, hp, err)
			continue
		}
		out = append(out, [2]string{h, p})
	}
	return out
}

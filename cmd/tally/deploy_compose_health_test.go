package main

// The compose files' images, healthchecks and start order, checked against
// the code: a Tally healthcheck runs `tally health` (the image is
// distroless) at the path deploy/Dockerfile installs the binary to, on the
// port the service's own flags listen on, and every depends_on condition
// can be met.

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

type composeHealthcheck struct {
	Test        any    `yaml:"test"`
	Interval    string `yaml:"interval"`
	Timeout     string `yaml:"timeout"`
	StartPeriod string `yaml:"start_period"`
	Retries     int    `yaml:"retries"`
	Disable     bool   `yaml:"disable"`
}

// command is the healthcheck's test as a list: CMD or CMD-SHELL first.
func (h *composeHealthcheck) command() []string {
	switch v := h.Test.(type) {
	case string:
		return []string{"CMD-SHELL", v}
	case []any:
		var out []string
		for _, a := range v {
			out = append(out, fmt.Sprint(a))
		}
		return out
	}
	return nil
}

func (s composeService) hasHealthcheck() bool {
	return s.Healthcheck != nil && !s.Healthcheck.Disable && len(s.Healthcheck.command()) > 1
}

// dependencies are the services s waits for, with their conditions (the
// short list form means service_started).
func (s composeService) dependencies() map[string]string {
	deps := map[string]string{}
	switch d := s.DependsOn.(type) {
	case []any:
		for _, v := range d {
			deps[fmt.Sprint(v)] = "service_started"
		}
	case map[string]any:
		for k, v := range d {
			cond := "service_started"
			if m, ok := v.(map[string]any); ok && m["condition"] != nil {
				cond = fmt.Sprint(m["condition"])
			}
			deps[k] = cond
		}
	}
	return deps
}

// tallyBinary is where deploy/Dockerfile installs tally, the image's
// entrypoint: the healthchecks run it by that path (no shell, no PATH).
func tallyBinary(t *testing.T) string {
	t.Helper()
	dockerfile := string(readRepoFile(t, "deploy/Dockerfile", "deploy/Dockerfile"))
	copyTo := regexp.MustCompile(`(?m)^COPY --from=build /out/tally (\S+)$`).FindStringSubmatch(dockerfile)
	entry := regexp.MustCompile(`(?m)^ENTRYPOINT \["([^"]+)"\]$`).FindStringSubmatch(dockerfile)
	if copyTo == nil || entry == nil || copyTo[1] != entry[1] {
		t.Fatalf("deploy/Dockerfile: the binary is copied to %q and the entrypoint is %q; want one path", copyTo, entry)
	}
	if !strings.Contains(dockerfile, "FROM gcr.io/distroless/") {
		t.Log("deploy/Dockerfile is no longer distroless: healthchecks could use a shell, but tally health still works")
	}
	return copyTo[1]
}

// pinnedImage: a registry image with an explicit version, never latest, so
// that the stack starts the same way next year.
var pinnedImage = regexp.MustCompile(`^[a-z0-9./_-]+:v?[0-9][A-Za-z0-9._-]*$`)

// checkComposeHealth checks images, healthchecks and depends_on of a
// compose file. With everyLongRunning, every service that does not run once
// (migrate) must have a healthcheck.
func checkComposeHealth(t *testing.T, name string, f *composeFile, procs map[string]*tallyProc, everyLongRunning bool) {
	binary := tallyBinary(t)
	oneShot := map[string]bool{}
	for _, s := range f.Services {
		for dep, cond := range s.dependencies() {
			if cond == "service_completed_successfully" {
				oneShot[dep] = true
			}
		}
	}
	hostPorts := map[string]string{}
	for svcName, s := range f.Services {
		where := name + " service " + svcName
		switch {
		case s.Image != "" && s.Build != nil, s.Image == "" && s.Build == nil:
			t.Errorf("%s: want either an image or a build", where)
		case s.Build != nil:
			if _, err := os.Stat(filepath.Join(repoRoot, fmt.Sprint(s.Build["dockerfile"]))); err != nil || !s.isTally() {
				t.Errorf("%s: builds %v; Tally's one image is deploy/Dockerfile", where, s.Build)
			}
		case !pinnedImage.MatchString(s.Image):
			t.Errorf("%s: image %q has no pinned version", where, s.Image)
		}
		for _, p := range s.Ports {
			host, _, _ := strings.Cut(p, ":")
			if other, ok := hostPorts[host]; ok {
				t.Errorf("%s: host port %s is published by %s too", where, host, other)
			}
			hostPorts[host] = svcName
		}
		p := procs[svcName]
		if oneShot[svcName] {
			if (s.isTally() && (p == nil || p.component != "migrate")) || len(s.Ports) > 0 || s.Restart == "always" || s.Restart == "unless-stopped" {
				t.Errorf("%s: others wait for it to complete, so it must run once and exit (tally migrate, no ports, no restart always)", where)
			}
		} else if p != nil && p.component == "migrate" {
			t.Errorf("%s: runs migrate but no service waits for it (condition: service_completed_successfully)", where)
		}
		if !oneShot[svcName] && !s.hasHealthcheck() && (everyLongRunning || p != nil) {
			t.Errorf("%s: a long-running service without a healthcheck", where)
		}
		if s.Healthcheck != nil {
			checkHealthcheck(t, where, s.Healthcheck, p, binary)
		}
		for dep, cond := range s.dependencies() {
			target, ok := f.Services[dep]
			switch {
			case !ok:
				// checkComposeWiring reports it.
			case cond == "service_healthy" && !target.hasHealthcheck():
				t.Errorf("%s: waits for %s to be healthy, which has no healthcheck", where, dep)
			case !slices.Contains([]string{"service_started", "service_healthy", "service_completed_successfully"}, cond):
				t.Errorf("%s: depends on %s with unknown condition %q", where, dep, cond)
			}
		}
		if p != nil {
			checkTallyDependencies(t, where, f, s, p)
		}
	}
}

// checkHealthcheck: the test is a command docker can run; a Tally one is
// `tally health` on the service's own listener.
func checkHealthcheck(t *testing.T, where string, h *composeHealthcheck, p *tallyProc, binary string) {
	cmd := h.command()
	if len(cmd) < 2 || (cmd[0] != "CMD" && cmd[0] != "CMD-SHELL") {
		t.Errorf("%s: healthcheck test %v: want [CMD, ...] or [CMD-SHELL, ...]", where, cmd)
		return
	}
	for _, d := range []string{h.Interval, h.Timeout, h.StartPeriod} {
		if _, err := time.ParseDuration(d); d != "" && err != nil {
			t.Errorf("%s: healthcheck duration %q: %v", where, d, err)
		}
	}
	if h.Retries < 0 {
		t.Errorf("%s: healthcheck retries %d", where, h.Retries)
	}
	if p == nil {
		return
	}
	if cmd[0] != "CMD" || len(cmd) < 4 || cmd[1] != binary || cmd[2] != "health" {
		t.Errorf("%s: healthcheck %q: the image has no shell; want [CMD, %s, health, <url>]", where, cmd, binary)
		return
	}
	flags, target := cmd[3:len(cmd)-1], cmd[len(cmd)-1]
	if err := commandAccepts("health", flags...); err != nil {
		t.Errorf("%s: healthcheck tally health %q: %v", where, flags, err)
	}
	u, err := url.Parse(target)
	if err != nil {
		t.Errorf("%s: healthcheck URL %q: %v", where, target, err)
		return
	}
	if port := p.listenPort(t); u.Scheme != "http" || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost") || u.Port() != port {
		t.Errorf("%s: healthcheck GETs %s; the service listens on :%s inside its container (want http://127.0.0.1:%s/...)", where, target, port, port)
	}
	if u.Path != "/readyz" && u.Path != "/healthz" {
		t.Errorf("%s: healthcheck GETs %s, which is not /readyz or /healthz", where, u.Path)
	}
}

// checkTallyDependencies: a Tally process starts after the brokers it names
// are healthy, and a process that does not migrate after the migration ran.
func checkTallyDependencies(t *testing.T, where string, f *composeFile, s composeService, p *tallyProc) {
	deps := s.dependencies()
	need := map[string]string{}
	if hasFlag(p.component, "kafka.brokers") {
		for _, hp := range hostPorts(t, where, p.get("kafka.brokers")) {
			need[hp[0]] = "service_healthy"
		}
	}
	if p.component == "migrate" {
		for _, hp := range hostPorts(t, where, p.get("clickhouse.addr")) {
			need[hp[0]] = "service_healthy"
		}
	}
	if hasFlag(p.component, "clickhouse.migrate") && p.get("clickhouse.migrate") == "false" {
		migrates := false
		for svcName, other := range f.Services {
			if other.isTally() && len(other.Command) > 0 && other.Command[0] == "migrate" {
				need[svcName] = "service_completed_successfully"
				migrates = true
			}
		}
		if !migrates {
			t.Errorf("%s: runs with -clickhouse.migrate=false but no migrate service runs before it", where)
		}
	}
	for dep, cond := range need {
		got, waits := deps[dep]
		if _, ok := f.Services[dep]; ok && got != cond {
			if !waits {
				got = "nothing"
			}
			t.Errorf("%s: needs %s but waits for %s; want depends_on %s: { condition: %s }", where, dep, got, dep, cond)
		}
	}
}

// checkComposeEnvironment: a TALLY_* variable a service's command ignores
// (it has no such flag) is allowed only as part of the environment every
// Tally service of the file shares; set on one service alone, it is a
// setting that silently does nothing. Unused named volumes are reported
// too.
func checkComposeEnvironment(t *testing.T, name string, f *composeFile, procs map[string]*tallyProc) {
	byEnv := flagOfEnv()
	shared := func(env, value string) bool {
		for svcName, s := range f.Services {
			if _, ok := procs[svcName]; ok && s.env()[env] != value {
				return false
			}
		}
		return true
	}
	for svcName, p := range procs {
		for env, value := range f.Services[svcName].env() {
			flagName, ok := byEnv[env]
			if ok && !hasFlag(p.component, flagName) && !shared(env, value) {
				t.Errorf("%s service %s: %s is not a setting of tally %s (and not shared by every Tally service)", name, svcName, env, p.component)
			}
		}
	}
	used := map[string]bool{}
	for _, s := range f.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			used[src] = true
		}
	}
	for v := range f.Volumes {
		if !used[v] {
			t.Errorf("%s: volume %s is declared but no service mounts it", name, v)
		}
	}
}

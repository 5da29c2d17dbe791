package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

var (
	allFlagsOnce   sync.Once
	allFlagsByName map[string]*flag.Flag
	allFlagsEnv    map[string]bool // some command reads the flag's TALLY_* variable
)

func collectAllFlags() {
	allFlagsOnce.Do(func() {
		sets, err := collectFlags()
		if err != nil {
			panic(err)
		}
		allFlagsByName, allFlagsEnv = map[string]*flag.Flag{}, map[string]bool{}
		for _, cf := range sets {
			for _, f := range cf.flags {
				if _, ok := allFlagsByName[f.Name]; !ok {
					allFlagsByName[f.Name] = f
				}
				allFlagsEnv[f.Name] = allFlagsEnv[f.Name] || cf.envOverride(f.Name)
			}
		}
	})
}

// allFlagSets returns the flags of every command, by flag name (the first
// command's variant where commands differ).
func allFlagSets() map[string]*flag.Flag {
	collectAllFlags()
	return allFlagsByName
}

// flagHasEnv reports whether some command reads the flag's TALLY_* variable.
func flagHasEnv(name string) bool {
	collectAllFlags()
	return allFlagsEnv[name]
}

const readmePath = "../../README.md"

// settingsTable finds the README's Settings table: from its header row to
// the first line that is not a table row. It returns the table and the
// README around it.
func settingsTable(t *testing.T, readme string) (before, table, after string) {
	t.Helper()
	const header = "| flag | environment |"
	i := strings.Index(readme, "\n## Settings\n")
	if i < 0 {
		t.Fatal("README has no ## Settings section")
	}
	j := strings.Index(readme[i:], "\n"+header)
	if j < 0 {
		t.Fatalf("README's Settings section has no table starting %q", header)
	}
	start := i + j + 1
	end := start
	for end < len(readme) && readme[end] == '|' {
		nl := strings.IndexByte(readme[end:], '\n')
		if nl < 0 {
			end = len(readme)
			break
		}
		end += nl + 1
	}
	return readme[:start], readme[start:end], readme[end:]
}

// The README's Settings table is exactly what `tally help config` prints,
// row for row, so neither can drift from the flags the commands register.
// TALLY_UPDATE_README=1 rewrites the table from the code.
func TestREADMESettingsAreTheConfigReference(t *testing.T) {
	data, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := runHelp(&want, []string{"config"}); err != nil {
		t.Fatal(err)
	}
	before, table, after := settingsTable(t, string(data))
	if table == want.String() {
		return
	}
	if os.Getenv("TALLY_UPDATE_README") != "" {
		if err := os.WriteFile(readmePath, []byte(before+want.String()+after), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("README's Settings table rewritten from tally help config")
		return
	}
	got, wantLines := strings.Split(table, "\n"), strings.Split(want.String(), "\n")
	for i := 0; i < max(len(got), len(wantLines)); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(wantLines) {
			w = wantLines[i]
		}
		if g != w {
			t.Errorf("README Settings table line %d:\n README: %s\n   code: %s", i+1, g, w)
		}
	}
	t.Error("the README's Settings table is not what `tally help config` prints; regenerate it with TALLY_UPDATE_README=1 go test ./cmd/tally -run TestREADMESettingsAreTheConfigReference")
}

// Every command's flags reach the reference: a command that parsed its
// flags some other way than parseFlags would be missing from it.
func TestConfigReferenceHasEveryCommand(t *testing.T) {
	sets, err := collectFlags()
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != len(commands) {
		t.Fatalf("flags of %d commands, want %d", len(sets), len(commands))
	}
	var out bytes.Buffer
	if err := runHelp(&out, []string{"config"}); err != nil {
		t.Fatal(err)
	}
	for _, cf := range sets {
		for _, f := range cf.flags {
			if !strings.Contains(out.String(), "| `-"+f.Name+"` |") {
				t.Errorf("tally help config has no row for -%s of tally %s", f.Name, cf.command)
			}
		}
	}
	if err := runHelp(&out, []string{"nonsense"}); err == nil {
		t.Error("tally help nonsense: want an error naming the topics")
	}
}

// The README's table of the compose stack names every service of
// docker-compose.yml with the host ports it publishes, and nothing else.
func TestREADMEComposeTable(t *testing.T) {
	data, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n### The compose stack\n")
	if !ok {
		t.Fatal("README has no section ### The compose stack")
	}
	section, _, _ = strings.Cut(section, "\n### ")
	rows := map[string]string{} // service -> port cell
	what := map[string]string{} // service -> what cell
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) > 3 && strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			name := strings.Trim(strings.TrimSpace(cells[1]), "`")
			rows[name], what[name] = strings.TrimSpace(cells[2]), cells[3]
		}
	}
	f := readCompose(t, "docker-compose.yml")
	// The credentials the README gives are Grafana's.
	env := f.Services["grafana"].env()
	if want := fmt.Sprintf("user `%s`, password `%s`", env["GF_SECURITY_ADMIN_USER"], env["GF_SECURITY_ADMIN_PASSWORD"]); !strings.Contains(what["grafana"], want) {
		t.Errorf("README's compose table: Grafana's row does not say %q", want)
	}
	for name, s := range f.Services {
		cell, ok := rows[name]
		if !ok {
			t.Errorf("README's compose table has no row for service %s", name)
			continue
		}
		var published []string
		for _, p := range s.Ports {
			host, _, _ := strings.Cut(p, ":")
			published = append(published, host)
		}
		if len(published) > 0 && cell != strings.Join(published, ", ") {
			t.Errorf("README's compose table gives %s the port %q; it publishes %v", name, cell, published)
		}
		if len(published) == 0 && cell != "" && !strings.Contains(cell, "inside") {
			t.Errorf("README's compose table gives %s the port %q; it publishes none", name, cell)
		}
		delete(rows, name)
	}
	for name := range rows {
		t.Errorf("README's compose table has a row for %s, which is not a service of docker-compose.yml", name)
	}
}

package main

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tally-oss/tally/internal/config"
	"github.com/tally-oss/tally/internal/testenv"
)

// readmeStep is one command of a README shell example (a heredoc or a
// continued line included) and the output the README shows for it: the
// "# " comment lines right below it.
type readmeStep struct {
	command string
	want    []string
}

// readmeSteps splits a shell example into steps. A comment after a blank
// line explains; a comment right below a command is its output.
func readmeSteps(block string) []readmeStep {
	var steps []readmeStep
	lines := strings.Split(block, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		switch {
		case strings.TrimSpace(line) == "":
			continue
		case strings.HasPrefix(line, "#"):
			if n := len(steps); n > 0 && i > 0 && strings.TrimSpace(lines[i-1]) != "" && (len(steps[n-1].want) > 0 || !strings.HasPrefix(lines[i-1], "#")) {
				steps[n-1].want = append(steps[n-1].want, strings.TrimPrefix(strings.TrimPrefix(line, "#"), " "))
			}
			continue
		}
		cmd := []string{line}
		if _, delim, ok := strings.Cut(line, "<<'"); ok {
			delim, _, _ = strings.Cut(delim, "'")
			for i++; i < len(lines) && lines[i] != delim; i++ {
				cmd = append(cmd, lines[i])
			}
			cmd = append(cmd, delim)
		}
		for strings.HasSuffix(cmd[len(cmd)-1], "\\") && i+1 < len(lines) {
			i++
			cmd = append(cmd, lines[i])
		}
		steps = append(steps, readmeStep{command: strings.Join(cmd, "\n")})
	}
	return steps
}

// testREADMECLIExamples runs the shell examples of "Command line and Go
// client" as written, in a directory holding ./bin/tally (the built
// binary, as make run leaves it), after the README's earlier examples ran
// against p, and compares each command's output with the lines the README
// shows below it, exactly. Only TALLY_URL is set, to p's one base URL: the
// :8000 of make run.
func testREADMECLIExamples(t *testing.T, p *pipeline, readme string) {
	section := testenv.MarkdownSection(t, readme, "## Command line and Go client", "## Settings")
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1)
	if len(blocks) == 0 {
		t.Fatal("no shell example in Command line and Go client")
	}
	bin, err := testenv.TallyBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(dir, "bin", "tally")); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TALLY_") {
			env = append(env, kv)
		}
	}
	env = append(env, "TALLY_KEY="+devKey, "TALLY_URL="+p.apiURL)
	checked := 0
	for _, b := range blocks {
		for _, step := range readmeSteps(b[1]) {
			cmd := exec.Command("bash", "-c", "set -eu -o pipefail\n"+step.command)
			cmd.Dir, cmd.Env = dir, env
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("README command failed: %v\n%s\n%s", err, step.command, out)
			}
			if step.want == nil {
				continue
			}
			checked++
			if want := strings.Join(step.want, "\n") + "\n"; string(out) != want {
				t.Errorf("README command\n%s\nprinted\n%s\nthe README shows\n%s", step.command, out, want)
			}
		}
	}
	if checked < 3 {
		t.Errorf("checked the output of %d commands, want send, usage and meters", checked)
	}
}

// The README documents every flag of the client verbs in "Command line and
// Go client", and the environment variable of each connection flag.
func TestREADMEDocumentsCLIFlags(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := testenv.MarkdownSection(t, string(readme), "## Command line and Go client", "## Settings")
	var send sendConfig
	var use usageConfig
	var meters metersConfig
	sets := map[string]*flag.FlagSet{}
	for name, register := range map[string]func(*flag.FlagSet){
		"send": send.register, "usage": use.register, "meters": meters.register,
	} {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		register(fs)
		sets[name] = fs
	}
	for name, fs := range sets {
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(section, "`-"+f.Name) {
				t.Errorf("README does not document -%s of tally %s", f.Name, name)
			}
		})
	}
	for _, name := range connFlagNames {
		if !strings.Contains(section, "| `-"+name+"` | `"+config.EnvName(name)+"` |") {
			t.Errorf("README's table does not document -%s (%s)", name, config.EnvName(name))
		}
	}
}

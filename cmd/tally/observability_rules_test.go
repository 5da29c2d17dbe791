package main

// The alert rules against Prometheus and the runbook: the rules parse and
// validate with Prometheus' own rule parser, and every alert links a
// section of RUNBOOK.md that says what it means, the impact, how to
// diagnose and how to fix; what the runbook refers to exists.

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

const (
	rulesFile      = "deploy/prometheus/tally-rules.yml"
	prometheusFile = "deploy/prometheus/prometheus.yml"
	// runbookBase is where the alerts' runbook_url point: this repository's
	// files on GitHub.
	runbookBase = "https://github.com/tally-oss/tally/blob/main/"
)

// promQL is the parser Prometheus uses (its default functions).
var promQL = parser.NewParser(parser.Options{})

// parseRules parses the rules file as Prometheus loads it; any error fails.
func parseRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := rulefmt.ParseFile(filepath.Join(repoRoot, rulesFile), false, model.LegacyValidation, promQL, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("%s: %v", rulesFile, err)
	}
	if groups == nil {
		t.FailNow()
	}
	return groups
}

// The rules parse and validate as Prometheus would load them, and every
// alert has a severity, a summary and a runbook section with its four
// parts; every runbook section is an alert's.
func TestAlertRulesAndRunbooks(t *testing.T) {
	groups := parseRules(t)
	sections := map[string]map[string]string{} // file -> anchor -> section text
	alerts := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if alerts[r.Alert] {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			alerts[r.Alert] = true
			if !slices.Contains([]string{"page", "warn"}, r.Labels["severity"]) {
				t.Errorf("alert %s: severity %q, want page or warn", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("alert %s has no summary", r.Alert)
			}
			file, anchor, ok := strings.Cut(strings.TrimPrefix(r.Annotations["runbook_url"], runbookBase), "#")
			if !ok || !strings.HasPrefix(r.Annotations["runbook_url"], runbookBase) {
				t.Errorf("alert %s: runbook_url %q, want %s<file>#<anchor>", r.Alert, r.Annotations["runbook_url"], runbookBase)
				continue
			}
			if sections[file] == nil {
				sections[file] = markdownSections(t, file)
			}
			text, ok := sections[file][anchor]
			if !ok {
				t.Errorf("alert %s: %s has no section #%s", r.Alert, file, anchor)
				continue
			}
			for _, part := range []string{"**Meaning.**", "**Impact.**", "**Diagnose.**", "**Fix.**"} {
				if !strings.Contains(text, part) {
					t.Errorf("alert %s: the runbook section #%s has no %s", r.Alert, anchor, part)
				}
			}
			delete(sections[file], anchor)
		}
	}
	for file, left := range sections {
		for anchor := range left {
			t.Errorf("%s: section #%s belongs to no alert of %s", file, anchor, rulesFile)
		}
	}
	if len(alerts) == 0 {
		t.Fatalf("%s has no alerts", rulesFile)
	}
	checkRunbookReferences(t)
}

// runbookFile is where the alerts' sections are.
const runbookFile = "RUNBOOK.md"

// checkRunbookReferences: what the runbook sends an operator to exists. A
// quoted name ("Consumer lag by partition") is a panel or the dashboard's
// title, or a heading of the README.
func checkRunbookReferences(t *testing.T) {
	var d dashboard
	if err := json.Unmarshal(readRepoFile(t, tallyDashboard, tallyDashboard), &d); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{d.Title: true}
	for _, p := range d.allPanels() {
		names[p.Title] = true
	}
	for _, line := range strings.Split(string(readRepoFile(t, "README.md", "README.md")), "\n") {
		if h, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " "); ok && strings.HasPrefix(line, "#") {
			names[h] = true
		}
	}
	space := regexp.MustCompile(`\s+`)
	for _, m := range regexp.MustCompile(`"([A-Z][^"]*)"`).FindAllStringSubmatch(string(readRepoFile(t, runbookFile, runbookFile)), -1) {
		if name := space.ReplaceAllString(m[1], " "); !names[name] {
			t.Errorf("%s refers to %q, which is no panel of %s and no heading of the README", runbookFile, name, tallyDashboard)
		}
	}
}

// markdownSections splits a repository Markdown file into its "## "
// sections, keyed by the anchor GitHub gives the heading.
func markdownSections(t *testing.T, file string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, file))
	if err != nil {
		t.Fatalf("runbook %s: %v", file, err)
	}
	out := map[string]string{}
	var anchor string
	for _, line := range strings.Split(string(data), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			anchor = githubAnchor(h)
			out[anchor] = ""
			continue
		}
		if anchor != "" {
			out[anchor] += line + "\n"
		}
	}
	return out
}

// githubAnchor is the fragment GitHub links a heading with.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9'):
			b.WriteRune(r)
		}
	}
	return b.String()
}

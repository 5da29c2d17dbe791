package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/tally-oss/tally/internal/config"
)

// allFlagSets returns the flags of every command, by flag name.
func allFlagSets() map[string]*flag.Flag {
	flags := map[string]*flag.Flag{}
	fs := flag.NewFlagSet("all", flag.ContinueOnError)
	var a allFlags
	a.register(fs)
	fs.Bool("clickhouse.migrate", true, "apply the ClickHouse schema at start (ingest has no ClickHouse; tally all always migrates)")
	fs.VisitAll(func(f *flag.Flag) { flags[f.Name] = f })
	return flags
}

// The README documents every setting: a flag missing from it is a setting
// nobody can find. TALLY_PRINT_FLAGS=1 prints the table rows.
func TestREADMEDocumentsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	flags := allFlagSets()
	names := make([]string, 0, len(flags))
	for n := range flags {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := flags[n]
		if os.Getenv("TALLY_PRINT_FLAGS") != "" {
			def := f.DefValue
			if def == "" {
				def = " "
			}
			fmt.Printf("| `-%s` | `%s` | `%s` | %s |\n", n, config.EnvName(n), def, strings.ReplaceAll(f.Usage, "|", "\\|"))
		}
		if !strings.Contains(string(readme), "`-"+n+"`") || !strings.Contains(string(readme), config.EnvName(n)) {
			t.Errorf("README does not document -%s (%s)", n, config.EnvName(n))
		}
	}
}

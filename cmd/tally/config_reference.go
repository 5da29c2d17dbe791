package main

// `tally help config` prints the configuration reference: every flag of
// every command with its environment variable, default and meaning, as the
// Markdown table the README's Settings section holds. It is generated from
// the flag sets the commands register, and a test keeps the README equal
// to it (readme_test.go), so the reference cannot drift from the code.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/tally-oss/tally/internal/config"
)

var (
	// flagSetSeen, when set, receives the flag set a command registered
	// and parseFlagsArgs returns errFlagsCollected instead of parsing:
	// the command stops before it does anything. hasEnv says which flags
	// have a TALLY_* override (nil: every flag, as parseFlags applies).
	flagSetSeen       func(fs *flag.FlagSet, hasEnv func(name string) bool)
	flagSetSeenMu     sync.Mutex
	errFlagsCollected = errors.New("flags collected")
)

// commandFlags is one command's flag set.
type commandFlags struct {
	command string
	flags   []*flag.Flag // sorted by name
	hasEnv  func(name string) bool
}

// envOverride reports whether the command reads the flag's TALLY_*
// variable.
func (cf commandFlags) envOverride(name string) bool { return cf.hasEnv == nil || cf.hasEnv(name) }

// collectFlags returns the flags of every command, in the order of
// commands. A command that returns without registering its flags through
// parseFlags is an error: its settings would be missing from the reference.
func collectFlags() ([]commandFlags, error) {
	flagSetSeenMu.Lock()
	defer flagSetSeenMu.Unlock()
	defer func() { flagSetSeen = nil }()
	var out []commandFlags
	var errs []error
	for _, c := range commands {
		var seen *flag.FlagSet
		var hasEnv func(string) bool
		flagSetSeen = func(fs *flag.FlagSet, env func(string) bool) { seen, hasEnv = fs, env }
		err := c.run(context.Background(), nil)
		if !errors.Is(err, errFlagsCollected) || seen == nil {
			errs = append(errs, fmt.Errorf("tally %s did not register its flags through parseFlags (got %v)", c.name, err))
			continue
		}
		cf := commandFlags{command: c.name, hasEnv: hasEnv}
		seen.VisitAll(func(f *flag.Flag) { cf.flags = append(cf.flags, f) })
		out = append(out, cf)
	}
	return out, errors.Join(errs...)
}

// configRow is one row of the reference: a flag, and the commands that
// have it with this default and meaning.
type configRow struct {
	flag     *flag.Flag
	env      bool // TALLY_* overrides it
	commands []string
}

// configRows merges the commands' flags into rows sorted by flag name; a
// flag whose default, meaning or environment override differs between
// commands gets a row per variant.
func configRows(sets []commandFlags) []configRow {
	var rows []configRow
	for _, cf := range sets {
		for _, f := range cf.flags {
			env := cf.envOverride(f.Name)
			i := slices.IndexFunc(rows, func(r configRow) bool {
				return r.flag.Name == f.Name && r.flag.DefValue == f.DefValue && r.flag.Usage == f.Usage && r.env == env
			})
			if i < 0 {
				rows = append(rows, configRow{flag: f, env: env})
				i = len(rows) - 1
			}
			rows[i].commands = append(rows[i].commands, cf.command)
		}
	}
	slices.SortStableFunc(rows, func(a, b configRow) int { return strings.Compare(a.flag.Name, b.flag.Name) })
	return rows
}

// writeConfigReference writes the reference as a Markdown table.
func writeConfigReference(w io.Writer) error {
	sets, err := collectFlags()
	if err != nil {
		return err
	}
	formatConfigReference(w, sets)
	return nil
}

// formatConfigReference writes the table of the commands' flags.
func formatConfigReference(w io.Writer, sets []commandFlags) {
	fmt.Fprintln(w, "| flag | environment | default | commands | meaning |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range configRows(sets) {
		def := r.flag.DefValue
		if def == "" {
			def = " "
		}
		cmds := "every command"
		if len(r.commands) < len(sets) {
			cmds = strings.Join(r.commands, ", ")
		}
		env := "(none)"
		if r.env {
			env = "`" + config.EnvName(r.flag.Name) + "`"
		}
		fmt.Fprintf(w, "| `-%s` | %s | `%s` | %s | %s |\n",
			r.flag.Name, env, def, cmds, strings.ReplaceAll(r.flag.Usage, "|", `\|`))
	}
}

// runHelp is `tally help [config]`.
func runHelp(w io.Writer, args []string) error {
	switch {
	case len(args) == 0:
		usage()
		return nil
	case len(args) == 1 && args[0] == "config":
		return writeConfigReference(w)
	}
	usage()
	return fmt.Errorf("unknown help topic %q (topics: config)", strings.Join(args, " "))
}

// Package config holds the plumbing every command shares for settings:
// each setting is a flag, and an environment variable TALLY_<FLAG> (dots and
// dashes become underscores, upper case) overrides its default, so compose
// and Kubernetes files stay short. A flag given on the command line wins
// over the environment.
package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// EnvPrefix is the prefix of every environment override.
const EnvPrefix = "TALLY_"

// EnvName returns the environment variable that overrides a flag:
// "clickhouse.addr" -> "TALLY_CLICKHOUSE_ADDR".
func EnvName(flagName string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return EnvPrefix + strings.ToUpper(r.Replace(flagName))
}

// ApplyEnv sets every flag of fs not given on the command line from its
// environment variable, if that is set. Call it after fs.Parse.
func ApplyEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name := EnvName(f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// StringList is a flag holding a comma-separated list.
type StringList []string

func (l *StringList) String() string { return strings.Join(*l, ",") }

// Set replaces the list with the comma-separated values of s.
func (l *StringList) Set(s string) error {
	*l = nil
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

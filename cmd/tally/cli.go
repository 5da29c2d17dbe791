package main

// The client verbs (send, usage, meters) talk to a running Tally through
// the client package, like any other program would. Their connection
// flags have environment overrides (TALLY_URL, TALLY_KEY); the flags of a
// single call (a file, a time range) have none, so that a stray variable
// cannot change what a command does.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tally-oss/tally/client"
	"github.com/tally-oss/tally/internal/config"
)

// connFlags are where the client verbs find Tally.
type connFlags struct {
	url     string
	key     string
	timeout time.Duration
}

// connFlagNames are the flags set from the environment.
var connFlagNames = []string{"url", "key", "timeout"}

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", client.DefaultURL, "base URL of Tally's API")
	fs.StringVar(&c.key, "key", "", "API key (default, for a -url on this machine only: the dev key that tally all keeps in $TALLY_DATA_DIR/dev-api-key, else ./data/dev-api-key)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "timeout of each HTTP request")
}

func (c *connFlags) client(opts ...client.Option) (*client.Client, error) {
	u, err := url.Parse(c.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-url %q must be a URL such as %s", c.url, client.DefaultURL)
	}
	// The dev key is a credential of this machine's tally all: it is never
	// sent to another host.
	if c.key == "" && isLoopbackHost(u.Hostname()) {
		c.key = devKeyFromDataDir()
	}
	if c.key == "" {
		return nil, errors.New("no API key: set -key or TALLY_KEY (make run prints the dev key; it is used by itself only for a -url on this machine)")
	}
	opts = append([]client.Option{client.WithHTTPClient(&http.Client{Timeout: c.timeout})}, opts...)
	return client.New(c.url, c.key, opts...), nil
}

// isLoopbackHost reports whether host is localhost or a loopback IP.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseCLI parses flags and positional arguments in any order (`tally
// usage tokens -o csv` as well as `tally usage -o csv tokens`), then sets
// the connection flags not given from the environment.
func parseCLI(fs *flag.FlagSet, args []string) ([]string, error) {
	if flagSetSeen != nil { // tally help config: collect, do nothing
		flagSetSeen(fs, func(name string) bool { return slices.Contains(connFlagNames, name) })
		return nil, errFlagsCollected
	}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if rest[0] == "--" {
			positional = append(positional, rest[1:]...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, name := range connFlagNames {
		if v, ok := os.LookupEnv(config.EnvName(name)); ok && !given[name] && fs.Lookup(name) != nil {
			if err := fs.Set(name, v); err != nil {
				return nil, fmt.Errorf("%s=%q: %w", config.EnvName(name), v, err)
			}
		}
	}
	return positional, nil
}

// newCLIFlagSet returns a flag set whose usage names the verb.
func newCLIFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: tally %s\n\nFlags (TALLY_URL, TALLY_KEY and TALLY_TIMEOUT set -url, -key and -timeout):\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// stringsFlag is a flag that may be given more than once.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

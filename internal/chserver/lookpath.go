package chserver

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
)

// ErrNotFound is returned when no ClickHouse server binary can be found.
// Callers branch on it to print the install hint instead of a stack of
// exec errors.
var ErrNotFound = errors.New("ClickHouse server not found: install it with " +
	"`apt-get install -y clickhouse-server` or set TALLY_CLICKHOUSE_ADDR")

// candidate is one way to run a server: a binary and the arguments that
// come before --config-file.
type candidate struct {
	bin  string
	args []string
}

// LookPath tells how to run a ClickHouse server on this machine: the binary
// and the arguments to put before --config-file.
//
// Debian's clickhouse-server (18.16) ships a dedicated clickhouse-server
// binary; newer releases ship one `clickhouse` binary that takes the tool name
// as its first argument. The dedicated binary wins when both exist, because it
// is what the apt package installs here. Debian puts clickhouse-server in
// /usr/sbin, which is not on an ordinary user's PATH, so the well-known
// install locations are tried after PATH.
func LookPath() (bin string, args []string, err error) {
	for _, name := range []string{"clickhouse-server", "clickhouse"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, serverArgs(p), nil
		}
	}
	for _, p := range []string{"/usr/sbin/clickhouse-server", "/usr/bin/clickhouse"} {
		if isExecutable(p) {
			return p, serverArgs(p), nil
		}
	}
	return "", nil, ErrNotFound
}

// lookPathFor honours an explicit binary from Options before searching.
func lookPathFor(override string) (candidate, error) {
	if override != "" {
		p, err := exec.LookPath(override)
		if err != nil {
			return candidate{}, errors.Join(ErrNotFound, err)
		}
		return candidate{bin: p, args: serverArgs(p)}, nil
	}
	bin, args, err := LookPath()
	return candidate{bin: bin, args: args}, err
}

// serverArgs returns the subcommand the single-binary distribution needs.
func serverArgs(bin string) []string {
	if filepath.Base(bin) == "clickhouse" {
		return []string{"server"}
	}
	return nil
}

// configRoot picks the root element of the config file. 18.16 only knows
// <yandex>; releases that ship the single binary accept <clickhouse> and
// warn about (and will eventually drop) <yandex>.
func (c candidate) configRoot() string {
	if len(c.args) > 0 {
		return "clickhouse"
	}
	return "yandex"
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

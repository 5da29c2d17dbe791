package chserver

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// layout names the files and folders a server keeps under Options.Dir. The
// data folder is the only one that matters across restarts; config files are
// rewritten on every start because the ports may change.
type layout struct{ dir string }

func (l layout) config() string   { return filepath.Join(l.dir, "config.xml") }
func (l layout) users() string    { return filepath.Join(l.dir, "users.xml") }
func (l layout) data() string     { return filepath.Join(l.dir, "data") + "/" }
func (l layout) tmp() string      { return filepath.Join(l.dir, "tmp") + "/" }
func (l layout) logDir() string   { return filepath.Join(l.dir, "log") }
func (l layout) errorLog() string { return filepath.Join(l.dir, "log", "error.log") }
func (l layout) serverLog() string {
	return filepath.Join(l.dir, "log", "server.log")
}
func (l layout) console() string { return filepath.Join(l.dir, "log", "console.log") }

// status is the file the server keeps under its data path while running:
// "PID: n" on its first line, held with flock. A kill -9 leaves it behind,
// but the server only refuses to start while another process holds the lock,
// so a stale file is harmless.
func (l layout) status() string { return filepath.Join(l.dir, "data", "status") }

func (l layout) mkdirs() error {
	for _, d := range []string{l.data(), l.tmp(), l.logDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return nil
}

// writeConfig writes the smallest config that 18.16 accepts. mark_cache_size
// has no default in 18.16: without it the server refuses to start. A
// replica also gets its cluster's sections (ReplicaConfig.write).
func (l layout) writeConfig(root string, tcpPort, httpPort int, replica *ReplicaConfig) error {
	var b strings.Builder
	fmt.Fprintf(&b, "<%s>\n", root)
	fmt.Fprintf(&b, "  <logger><level>warning</level><log>%s</log><errorlog>%s</errorlog></logger>\n",
		esc(l.serverLog()), esc(l.errorLog()))
	b.WriteString("  <listen_host>127.0.0.1</listen_host>\n")
	fmt.Fprintf(&b, "  <tcp_port>%d</tcp_port>\n  <http_port>%d</http_port>\n", tcpPort, httpPort)
	fmt.Fprintf(&b, "  <path>%s</path>\n  <tmp_path>%s</tmp_path>\n", esc(l.data()), esc(l.tmp()))
	b.WriteString("  <mark_cache_size>268435456</mark_cache_size>\n")
	fmt.Fprintf(&b, "  <users_config>%s</users_config>\n", esc(l.users()))
	if replica != nil {
		replica.write(&b)
	}
	fmt.Fprintf(&b, "</%s>\n", root)
	if err := os.WriteFile(l.config(), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write server config: %w", err)
	}

	// One passwordless user reachable only from loopback: the server listens
	// on 127.0.0.1 alone and exists for this process's lifetime.
	users := fmt.Sprintf("<%[1]s><profiles><default><poll_interval>1</poll_interval></default></profiles>"+
		"<quotas><default></default></quotas><users><default><password></password>"+
		"<networks><ip>127.0.0.1</ip></networks><profile>default</profile>"+
		"<quota>default</quota></default></users></%[1]s>\n", root)
	if err := os.WriteFile(l.users(), []byte(users), 0o644); err != nil {
		return fmt.Errorf("write users config: %w", err)
	}
	return nil
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s)) // writing to a bytes.Buffer cannot fail
	return b.String()
}

// FreePorts asks the kernel for n distinct free loopback ports. All listeners
// stay open until every port is chosen, so the same port is not handed out
// twice; another process can still take one before the server binds it,
// which Start handles by retrying.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// fileSize returns the size of path, or 0 if it does not exist yet. Start
// records the error log's size so a failure reports only this run's lines.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// tailSince returns at most max bytes from the end of what was appended to
// path after offset.
func tailSince(path string, offset int64, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	size := fileSize(path)
	if size-offset > max {
		offset = size - max
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}

package main

// The processes tally bench starts, and what it reads of them in /proc
// (Linux; elsewhere the figures are 0).

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tally-oss/tally/internal/chserver"
)

// benchAddrs returns n distinct loopback addresses that were free a moment
// ago.
func benchAddrs(n int) ([]string, error) {
	ports, err := chserver.FreePorts(n)
	if err != nil {
		return nil, err
	}
	out := make([]string, n)
	for i, p := range ports {
		out[i] = "127.0.0.1:" + strconv.Itoa(p)
	}
	return out, nil
}

// child is a tally process the benchmark started.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// startChild starts exe with args, its output in logPath, and waits until
// readyAddr answers /readyz with 200.
func startChild(ctx context.Context, exe, logPath, readyAddr string, args ...string) (*child, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); out.Close(); close(c.done) }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + readyAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		select {
		case <-c.done:
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("tally %s exited before it was ready:\n%s", args[0], tail(b))
		case <-ctx.Done():
			c.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop()
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("tally %s not ready after 90s:\n%s", args[0], tail(b))
		}
	}
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// stop ends the child with SIGTERM, then SIGKILL after 30 s.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// procCPU is the user+system CPU time of process pid so far, in clock
// ticks of 10 ms.
func procCPU(pid int) time.Duration {
	f := procStat(pid)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// procStat returns the fields of /proc/<pid>/stat from field 3 (state) on,
// or nil.
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// procPeakRSSMiB is the peak resident set (VmHWM) of process pid, or 0.
func procPeakRSSMiB(pid int) float64 { return procStatusMiB(pid, "VmHWM:") }

// procRSSMiB is the resident set (VmRSS) of process pid now, or 0.
func procRSSMiB(pid int) float64 { return procStatusMiB(pid, "VmRSS:") }

func procStatusMiB(pid int, field string) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return round3(kb / 1024)
		}
	}
	return 0
}

// childPID returns the pid of a child of process parent whose command name
// starts with prefix, or 0: the ClickHouse server `tally all` starts.
func childPID(parent int, prefix string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := procStat(pid)
		if len(f) < 2 || f[1] != strconv.Itoa(parent) {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		if strings.HasPrefix(strings.TrimSpace(string(comm)), prefix) {
			return pid
		}
	}
	return 0
}

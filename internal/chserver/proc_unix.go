//go:build unix

package chserver

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// terminate asks the server to shut down cleanly: it flushes in-memory
// parts and removes its status file.
func terminate(pid int) error { return syscall.Kill(pid, syscall.SIGTERM) }

// kill ends the server's whole process group, which is the server alone
// unless it spawned helpers such as the ODBC bridge.
func kill(pid int) error { return syscall.Kill(-pid, syscall.SIGKILL) }

// alive reports whether a process with this pid is still running. EPERM
// means it exists but belongs to someone else. A zombie counts as gone: it
// has closed its files, so it holds no lock, and a server orphaned by a
// killed parent may never be reaped if PID 1 does not reap (containers, VMs).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no procfs (BSD, macOS): trust kill(0)
	}
	// The state follows the command name, which is in parentheses and may
	// itself contain spaces or parentheses.
	_, rest, ok := strings.Cut(string(stat[strings.LastIndexByte(string(stat), ')')+1:]), " ")
	return !ok || !strings.HasPrefix(rest, "Z")
}

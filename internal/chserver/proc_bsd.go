//go:build unix && !linux

package chserver

import "syscall"

// sysProcAttr puts the server in its own process group. Pdeathsig is
// Linux-only: elsewhere a parent killed with SIGKILL leaves the server
// running, and the next Start waits for it to be stopped.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

package chserver

import "syscall"

// sysProcAttr puts the server in its own process group, so a Ctrl-C in the
// terminal reaches only the parent, which then stops the server in order.
// Pdeathsig makes the kernel send SIGTERM to the server if the parent dies
// without calling Stop (kill -9, panic), so no orphan keeps the data
// directory locked. The signal fires when the forking OS thread exits; Go
// only retires threads of goroutines that exit while locked to their thread,
// which Start never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

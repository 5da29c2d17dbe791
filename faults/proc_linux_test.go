package faults

import "syscall"

// sysProcAttr makes the kernel kill a child when the test binary dies, so
// no aggregator outlives a crashed or timed-out test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

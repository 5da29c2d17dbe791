//go:build !unix

package chserver

import (
	"os"
	"syscall"
)

// ClickHouse runs only on Unix; these stubs keep the package compiling so
// that commands importing it build everywhere and fail at Start instead.

func sysProcAttr() *syscall.SysProcAttr { return nil }

func terminate(pid int) error { return kill(pid) }

func kill(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

func alive(int) bool { return false }

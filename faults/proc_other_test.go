//go:build !linux

package faults

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }

func cpuSeconds(int) (float64, bool) { return 0, false }

package testenv

import (
	"net"
	"testing"
)

// TestStablePortIsOutsideTheKernelsChoices: a port the kernel gives out for
// ":0" never equals a stable port, so an embedded ClickHouse choosing its
// ports cannot take the port of a process that is restarting (CI failed
// once on exactly that: `tally all` lost its broker port to ClickHouse).
func TestStablePortIsOutsideTheKernelsChoices(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for range 50 {
		p := StablePort(t)
		if p >= low || p < 1024 {
			t.Fatalf("StablePort() = %d, want in [1024, %d)", p, low)
		}
		if seen[p] {
			t.Fatalf("StablePort() gave %d twice", p)
		}
		seen[p] = true
	}
	for range 200 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if seen[p] {
			t.Fatalf("the kernel handed out stable port %d", p)
		}
	}
}

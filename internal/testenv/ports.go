package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// stablePorts remembers the ports StablePort handed out in this test
// binary, so it never offers one twice while its owner is down.
var stablePorts = struct {
	sync.Mutex
	given map[int]bool
}{given: map[int]bool{}}

// StablePort returns a loopback port for a process that a test stops and
// starts again on the same port (`tally all`, a broker, an aggregator).
//
// A port the kernel handed out for ":0" is a poor choice for that: while
// its owner is down, anything else asking the kernel for a free port (an
// embedded ClickHouse choosing its ports, another test's listener) may be
// given it, and the restart fails with "address already in use". StablePort
// chooses below the kernel's ephemeral range (ip_local_port_range), where
// the kernel never hands out ports by itself, and checks the port is free.
func StablePort(t testing.TB) int {
	t.Helper()
	port, err := stablePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// stablePort is StablePort for callers without a testing.TB (a TestMain).
func stablePort() (int, error) {
	low := ephemeralLow()
	const floor = 10000
	if low <= floor+1000 {
		return 0, fmt.Errorf("ephemeral port range starts at %d: no room below it for stable ports", low)
	}
	stablePorts.Lock()
	defer stablePorts.Unlock()
	for range 1000 {
		port := floor + rand.IntN(low-floor)
		if stablePorts.given[port] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // taken
		}
		if err := ln.Close(); err != nil {
			return 0, err
		}
		stablePorts.given[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no free port in [%d, %d) after 1000 tries", floor, low)
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768,
// Linux's default, where the range cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return 32768
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil || low <= 0 {
		return 32768
	}
	return low
}

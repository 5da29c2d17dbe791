package chserver

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"
)

// waitReady polls until the server on the port serves (`srvr` reports its
// Mode; before that every command answers "This ZooKeeper instance is not
// currently serving requests") and is ours (`conf` names our data dir:
// another ZooKeeper that won the port race would answer too).
func (zk *ZooKeeper) waitReady(ctx context.Context, dataDir string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		srvr, err := fourLetterWord(ctx, zk.addr, "srvr")
		if err == nil && !strings.Contains(srvr, "Mode:") {
			err = fmt.Errorf("not serving yet: %q", strings.TrimSpace(srvr))
		}
		if err == nil {
			var conf string
			conf, err = fourLetterWord(ctx, zk.addr, "conf")
			if err == nil && !strings.Contains(conf, "dataDir="+dataDir) {
				return fmt.Errorf("%s is served by another ZooKeeper (conf: %q): %w", zk.addr, conf, errPortInUse)
			}
		}
		if err == nil {
			return nil
		}
		select {
		case <-zk.done:
			return fmt.Errorf("process exited (%v)", zk.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w (last check: %v)", readyTimeout, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// fourLetterWord sends one of ZooKeeper's four-letter commands and returns
// the whole answer (the server closes the connection after it).
func fourLetterWord(ctx context.Context, addr, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte(cmd)); err != nil {
		return "", err
	}
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			if b.Len() > 0 {
				return b.String(), nil
			}
			return "", err
		}
	}
}

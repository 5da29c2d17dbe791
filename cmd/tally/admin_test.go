package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/testenv"
)

// TestAdminAddress runs `tally query` in-process twice against a test
// ClickHouse: without -admin.listen-addr no port serves Go's profiles;
// with it, the admin address does and the public port still does not,
// and a -http.write-timeout that would cut answers off is refused.
func TestAdminAddress(t *testing.T) {
	addr, database := testenv.NewMigratedDatabase(t)
	get := func(url string) int {
		t.Helper()
		client := &http.Client{Timeout: 10 * time.Second}
		resp, err := client.Get(url)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	run := func(extra ...string) (public string, stop func()) {
		t.Helper()
		public = freeAddr(t)
		args := append([]string{"-clickhouse.addr=" + addr, "-clickhouse.database=" + database, "-clickhouse.migrate=false",
			"-api-keys=acme:acme-key-0123456789abcdef", "-query.listen-addr=" + public, "-log.level=error"}, extra...)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- runQuery(ctx, args) }()
		deadline := time.Now().Add(30 * time.Second)
		for get("http://"+public+"/readyz") != http.StatusOK {
			select {
			case err := <-done:
				t.Fatalf("tally query %v stopped: %v", extra, err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("tally query %v not ready", extra)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return public, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("tally query %v: %v", extra, err)
			}
		}
	}

	public, stop := run()
	if code := get("http://" + public + "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("public port without an admin address: /debug/pprof/ = %d, want 404", code)
	}
	stop()

	admin := freeAddr(t)
	public, stop = run("-admin.listen-addr=" + admin)
	if code := get("http://" + public + "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("public port with an admin address: /debug/pprof/ = %d, want 404", code)
	}
	if code := get("http://" + admin + "/debug/pprof/heap"); code != http.StatusOK {
		t.Errorf("admin address /debug/pprof/heap = %d, want 200", code)
	}
	if code := get("http://" + admin + "/debug/pprof/profile?seconds=3600"); code != http.StatusBadRequest {
		t.Errorf("admin address /debug/pprof/profile?seconds=3600 = %d, want 400", code)
	}
	stop()
	if code := get("http://" + admin + "/debug/pprof/"); code != 0 {
		t.Errorf("admin address after stop answered %d", code)
	}

	err := runQuery(context.Background(), []string{"-clickhouse.addr=" + addr, "-api-keys=acme:acme-key-0123456789abcdef",
		"-http.write-timeout=5s"})
	if err == nil || !strings.Contains(err.Error(), "http.write-timeout") {
		t.Errorf("-http.write-timeout=5s: %v, want refused", err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

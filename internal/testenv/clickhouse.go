package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ClickHouse returns the native-protocol address ("host:port") of the test
// binary's shared ClickHouse server, starting it on first use. It fails the
// test, never skips it, when no server can be started.
func ClickHouse(t testing.TB) string {
	t.Helper()
	addr, err := sharedClickHouse()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// NewDatabase creates a database with a unique name on the shared server
// and drops it when the test ends. Tests create their tables in it, so they
// can run in parallel and in any order against one server.
func NewDatabase(t testing.TB) (addr, database string) {
	t.Helper()
	addr = ClickHouse(t)
	database = "test_" + randomHex(8)

	admin := open(t, addr, "default")
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := admin.Exec(ctx, "CREATE DATABASE "+database); err != nil {
		t.Fatalf("create test database %s on %s: %v", database, addr, err)
	}
	t.Cleanup(func() {
		// A fresh connection: the test's own connections may be closed or
		// broken by now. Cleanups run last-in first-out, so connections
		// opened with Conn after NewDatabase are already closed.
		conn := open(t, addr, "default")
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+database); err != nil {
			t.Errorf("drop test database %s: %v", database, err)
		}
	})
	return addr, database
}

// Conn opens a native-protocol connection to database on addr, checks it
// with a ping, and closes it when the test ends.
//
// Insert with PrepareBatch("INSERT INTO t (cols)") or INSERT ... SELECT:
// on 18.16 Exec("INSERT ... VALUES (...)") never returns, because the
// server waits for a data block the driver does not send.
func Conn(t testing.TB, addr, database string) driver.Conn {
	t.Helper()
	conn := open(t, addr, database)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// open connects over the native protocol; clickhouse-go's HTTP interface
// does not work with ClickHouse 18.16.
func open(t testing.TB, addr, database string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		Protocol:    clickhouse.Native,
		Auth:        clickhouse.Auth{Database: database, Username: "default"},
		DialTimeout: 5 * time.Second,
		// The driver's default is 5 minutes; a hung call (see Conn) should
		// fail its test well before `make test`'s 14-minute limit. Slow
		// queries still stream progress packets and do not hit it.
		ReadTimeout: time.Minute,
	})
	if err != nil {
		t.Fatalf("open clickhouse %s/%s: %v", addr, database, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		t.Fatalf("ping clickhouse %s/%s: %v", addr, database, err)
	}
	return conn
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails since Go 1.24
	return hex.EncodeToString(b)
}

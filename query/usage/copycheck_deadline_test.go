package usage

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/testenv"
	"github.com/tally-oss/tally/schemas"
)

// TestCopyCheckHoldsNoReadPastItsDeadline: the reader checks
// schema_migrations (tables.go copyState.get) holding s.mu, with the ctx
// of the read that happened to come first. While that check waits on
// ClickHouse, every other usage read waits on the mutex, which does not
// know their deadlines: a read given 500 ms answers only when the first
// read's ctx (here 15 s) gives up. The check runs at a query pod's first
// read and every 15 s until both copies are recorded, that is while the
// migrate Job's copy keeps ClickHouse busy. Here ClickHouse stops
// answering (a stalled network path, a real server behind a proxy): the
// second read should fail at its own deadline.
func TestCopyCheckHoldsNoReadPastItsDeadline(t *testing.T) {
	addr, db := testenv.NewMigratedDatabase(t)
	px := newStallProxy(t, addr)
	// Two connections in the pool before the stall, so that the second
	// read below does not need a new one (whose handshake has a timeout
	// of its own): what is measured is the wait for the check alone.
	conn := testenv.Conn(t, px.addr(), db)
	var warm sync.WaitGroup
	for range 2 {
		warm.Go(func() {
			if err := conn.Exec(t.Context(), "SELECT sleep(0.3)"); err != nil {
				t.Error(err)
			}
		})
	}
	warm.Wait()
	r := NewClickHouseReader(conn, 1000, nil)
	q := Query{OrgID: "acme", MeterKey: "tokens", Revision: 1, Aggregation: schemas.AggCount,
		From: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Location: time.UTC}

	// The control: a reader that has seen both copies recorded never
	// checks again, and its read gives up at its deadline.
	checked := NewClickHouseReader(testenv.Conn(t, px.addr(), db), 1000, nil)
	if _, err := checked.Read(t.Context(), q); err != nil {
		t.Fatal(err)
	}

	px.stall(true)
	defer px.stall(false)
	{
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		start := time.Now()
		_, err := checked.Read(ctx, q)
		cancel()
		t.Logf("control (copies already checked): %v after %s", err, time.Since(start).Round(time.Millisecond))
		if time.Since(start) > 3*time.Second {
			t.Fatalf("the control read did not give up at its deadline either")
		}
	}
	first := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_, err := r.Read(ctx, q)
		first <- err
	}()
	time.Sleep(300 * time.Millisecond) // the first read holds the check
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.Read(ctx, q)
	took := time.Since(start)
	t.Logf("second read: %v after %s", err, took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("a read with a 500 ms deadline answered after %s, held by another read's copy check", took.Round(time.Millisecond))
	}
	px.stall(false)
	<-first
}

// stallProxy forwards TCP connections to a real server; stalled, it
// stops passing bytes (connections stay open), as a stuck network path
// or server does.
type stallProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	stalled bool
	resume  chan struct{}
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, resume: make(chan struct{})}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			go p.pipe(c, s)
			go p.pipe(s, c)
		}
	}()
	return p
}

func (p *stallProxy) addr() string { return p.ln.Addr().String() }

func (p *stallProxy) stall(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled && !on {
		close(p.resume)
		p.resume = make(chan struct{})
	}
	p.stalled = on
}

func (p *stallProxy) gate() {
	p.mu.Lock()
	stalled, resume := p.stalled, p.resume
	p.mu.Unlock()
	if stalled {
		<-resume
	}
}

func (p *stallProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

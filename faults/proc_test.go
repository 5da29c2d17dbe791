package faults

import (
	"bufio"
	"context"
	"fmt"
	"github.com/tally-oss/tally/internal/testenv"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is one tally subprocess (ingest, an aggregator, query). It can be
// killed, stopped, paused and started again with the same arguments.
type proc struct {
	t    *testing.T
	name string
	bin  string
	args []string
	addr string // its HTTP address: API, /metrics, /readyz

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *tailBuffer
}

func newProc(t *testing.T, bin, name, addr string, args ...string) *proc {
	return &proc{t: t, name: name, bin: bin, addr: addr, args: args, out: newTailBuffer(64 << 10)}
}

// start launches the process; TALLY_* variables of the environment are
// dropped so that a developer's settings do not leak in.
func (p *proc) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.bin, p.args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TALLY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	fmt.Fprintf(p.out, "=== start %s %s\n", p.name, strings.Join(p.args, " "))
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(p.out, "=== %s exited: %v\n", p.name, err)
		close(done)
	}()
	p.cmd, p.done = cmd, done
}

// pid is the process id of the running process, or 0.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// running reports whether the current process has not exited.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig to the running process.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Process.Signal(sig); err != nil && sig != syscall.SIGKILL {
		p.t.Errorf("%s: signal %v: %v", p.name, sig, err)
	}
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	p.t.Helper()
	p.signal(syscall.SIGKILL)
	p.wait(30 * time.Second)
}

// stop sends SIGTERM and waits for an orderly exit, killing it after a
// generous timeout.
func (p *proc) stop() {
	p.t.Helper()
	if !p.running() {
		return
	}
	p.signal(syscall.SIGCONT) // a paused process cannot handle SIGTERM
	p.signal(syscall.SIGTERM)
	if !p.waitFor(30 * time.Second) {
		p.t.Errorf("%s ignored SIGTERM for 30s; killing it", p.name)
		p.kill()
	}
}

func (p *proc) wait(timeout time.Duration) {
	p.t.Helper()
	if !p.waitFor(timeout) {
		p.t.Fatalf("%s did not exit in %s", p.name, timeout)
	}
}

func (p *proc) waitFor(timeout time.Duration) bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// ready reports whether /readyz answers 200, and its body.
func (p *proc) ready() (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode == http.StatusOK, strings.TrimSpace(string(b))
}

// waitReady polls /readyz until it answers 200.
func (p *proc) waitReady(timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, body := p.ready()
		if ok {
			return
		}
		if !p.running() {
			p.t.Fatalf("%s exited before it was ready:\n%s", p.name, p.out.String())
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not ready after %s: %s", p.name, timeout, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metrics returns the sum of each metric family's samples (all label
// sets), by name, and the raw lines.
func (p *proc) metrics() (map[string]float64, []string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	sums := map[string]float64{}
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		lines = append(lines, line)
		name, value, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 {
			name, value = line[:i], line[strings.LastIndexByte(line, '}')+1:]
		}
		if f := strings.Fields(value); len(f) > 0 {
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				sums[name] += v
			}
		}
	}
	return sums, lines, sc.Err()
}

// tailBuffer keeps the last max bytes written, for the log of a failed test.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// freePort returns a loopback port for a component of a stack. Components
// are killed and restarted on their port, so it comes from below the
// kernel's ephemeral range (testenv.StablePort): the ports the brokers and
// ClickHouse servers are given by the kernel cannot take it meanwhile, and
// StablePort never offers a port twice.
func freePort(t *testing.T) int {
	t.Helper()
	return testenv.StablePort(t)
}

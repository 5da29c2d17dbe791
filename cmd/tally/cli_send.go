package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/tally-oss/tally/client"
)

// sendConfig is the configuration of `tally send`.
type sendConfig struct {
	conn        connFlags
	batchEvents int
	batchBytes  int
	linger      time.Duration
	concurrency int
	showReasons int
	retryFor    time.Duration
}

func (c *sendConfig) register(fs *flag.FlagSet) {
	c.conn.register(fs)
	fs.IntVar(&c.batchEvents, "batch-events", 1000, "events per request at most")
	fs.IntVar(&c.batchBytes, "batch-bytes", 1<<20, "bytes of JSON per request at most (before gzip)")
	fs.DurationVar(&c.linger, "linger", 200*time.Millisecond, "how long a partial request waits for more events")
	fs.IntVar(&c.concurrency, "concurrency", 2, "requests in flight at once")
	fs.IntVar(&c.showReasons, "show-rejections", 5, "rejections printed with the summary")
	fs.DurationVar(&c.retryFor, "retry-for", 2*time.Minute, "how long a request is retried after a 429, a 503 or a network error (0: once only)")
}

func runSend(ctx context.Context, args []string) error {
	return sendCommand(ctx, args, os.Stdin, os.Stdout, os.Stderr)
}

// sendCommand is `tally send [file...]`: events from files or stdin ("-"),
// each a JSON array, one JSON object or NDJSON, gzipped or not, sent in
// batches; a summary of accepted and rejected events at the end, and an
// error (exit status 1) when any event was rejected or not sent.
func sendCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cfg sendConfig
	fs := newCLIFlagSet("send", "send [flags] [file ...]   (none or \"-\": stdin; JSON array, object or NDJSON, gzip too)", stderr)
	cfg.register(fs)
	files, err := parseCLI(fs, args)
	if err != nil {
		return err
	}
	retry := client.DefaultRetryPolicy()
	retry.MaxElapsed = cfg.retryFor
	if cfg.retryFor <= 0 {
		retry = client.NoRetry()
	}
	var notifyMu sync.Mutex
	retry.Notify = func(err error, wait time.Duration) {
		notifyMu.Lock()
		defer notifyMu.Unlock()
		fmt.Fprintf(stderr, "retrying in %s: %v\n", wait.Round(time.Millisecond), err)
	}
	c, err := cfg.conn.client(client.WithRetry(retry))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		files = []string{"-"}
	}
	bar := newSendProgress(stderr, files)
	rep := &sendReport{showReasons: cfg.showReasons, positions: map[string][]string{}}
	b := c.NewBatcher(ctx, client.BatcherConfig{
		MaxEvents: cfg.batchEvents, MaxBytes: cfg.batchBytes, Linger: cfg.linger, Concurrency: cfg.concurrency,
		OnResult: func(r client.BatchResult) {
			rep.result(r)
			bar.answered(len(r.IDs))
		},
	})
	var readErr error
	for _, name := range files {
		if readErr = sendFile(ctx, b, name, bar.reader(stdin), rep.queue); readErr != nil {
			break
		}
	}
	sendErr := b.Close(context.Background())
	bar.finish()
	st := b.Stats()
	rep.print(stdout, st, readErr)
	switch {
	case readErr != nil || sendErr != nil:
		return errors.Join(readErr, sendErr)
	case st.Rejected > 0:
		return fmt.Errorf("%d of %d events rejected", st.Rejected, st.Events)
	}
	return nil
}

// sendReport gathers what `tally send` tells at the end, from the queue
// (called by the reader) and the Batcher's results (its goroutines).
type sendReport struct {
	showReasons int

	mu     sync.Mutex
	queued int
	// Where each event waiting for its answer is in the input ("stdin
	// line 3"), by id: a rejection names it, as an id the client made up
	// means nothing to the user.
	positions  map[string][]string
	reasons    []string // the first rejections, as printed
	unanswered []string // the first events that may have been recorded
	uncertain  int64    // events of failed requests that may have been recorded
}

// queue notes an event queued for sending and where it is in the input.
func (r *sendReport) queue(id, where string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queued++
	r.positions[id] = append(r.positions[id], where)
}

// result takes the answer of one request.
func (r *sendReport) result(res client.BatchResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	where := make([]string, len(res.IDs))
	for i, id := range res.IDs {
		if q := r.positions[id]; len(q) > 0 {
			where[i] = q[0]
			if len(q) == 1 {
				delete(r.positions, id)
			} else {
				r.positions[id] = q[1:]
			}
		}
	}
	for _, rej := range res.Rejected {
		if len(r.reasons) < r.showReasons {
			at := ""
			if rej.Index >= 0 && rej.Index < len(where) && where[rej.Index] != "" {
				at = " (" + where[rej.Index] + ")"
			}
			r.reasons = append(r.reasons, fmt.Sprintf("  %q%s: %s: %s", rej.ID, at, rej.Field, rej.Error))
		}
	}
	if res.Err != nil && res.MaybeRecorded {
		rejected := map[int]bool{}
		for _, rej := range res.Rejected {
			rejected[rej.Index] = true
		}
		r.uncertain += int64(len(res.IDs) - len(res.Rejected))
		for i, id := range res.IDs {
			if !rejected[i] && len(r.unanswered) < r.showReasons {
				u := fmt.Sprintf("  %q", id)
				if where[i] != "" {
					u += " (" + where[i] + ")"
				}
				r.unanswered = append(r.unanswered, u)
			}
		}
	}
}

// print writes the summary: the counts, the first rejections, the events
// that may have been recorded, and where reading stopped.
func (r *sendReport) print(stdout io.Writer, st client.BatcherStats, readErr error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	summary := fmt.Sprintf("accepted %d, rejected %d", st.Accepted, st.Rejected)
	if st.Failed > 0 {
		summary += fmt.Sprintf(", failed %d", st.Failed)
	}
	fmt.Fprintln(stdout, summary)
	for _, line := range r.reasons {
		fmt.Fprintln(stdout, line)
	}
	if more := st.Rejected - int64(len(r.reasons)); more > 0 {
		fmt.Fprintf(stdout, "  ... and %d more\n", more)
	}
	if r.uncertain > 0 {
		// A request without an answer (a timeout, retries spent) may have
		// been recorded: sending its events again counts each once only
		// with the ids they were sent with, made-up ones included.
		fmt.Fprintf(stdout, "%d of the failed events got no clear answer: ingest may have recorded them. "+
			"Send them again only with the ids they were sent with; an event without an id in the input got the one shown:\n", r.uncertain)
		for _, u := range r.unanswered {
			fmt.Fprintln(stdout, u)
		}
		if more := r.uncertain - int64(len(r.unanswered)); more > 0 {
			fmt.Fprintf(stdout, "  ... and %d more\n", more)
		}
	}
	var stop *stopError
	if errors.As(readErr, &stop) && r.queued > 0 {
		// The events before went out: sending the whole input again would
		// count those without an id twice (they get new ids).
		fmt.Fprintf(stdout, "reading stopped: the %d events before %s were sent (counted above); "+
			"send the input from there on, not all of it again (an event without an id would count twice)\n", r.queued, stop.where)
	}
}

// sendProgress shows how far `tally send` is, on stderr when it is a
// terminal: a bar of the input's bytes read when every input is a file of
// known size (gzipped files by their compressed bytes), else a spinner
// counting the events answered. The zero value shows nothing.
type sendProgress struct {
	bar   *progressbar.ProgressBar
	bytes bool // the bar counts bytes read, not events answered
}

func newSendProgress(stderr io.Writer, files []string) *sendProgress {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &sendProgress{}
	}
	return newSendProgressOn(stderr, files)
}

// newSendProgressOn is newSendProgress on a writer taken for a terminal.
func newSendProgressOn(stderr io.Writer, files []string) *sendProgress {
	var total int64
	for _, name := range files {
		fi, err := os.Stat(name)
		if name == "-" || err != nil || !fi.Mode().IsRegular() {
			total = -1
			break
		}
		total += fi.Size()
	}
	common := []progressbar.Option{
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("sending"),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionClearOnFinish(),
	}
	if total >= 0 {
		return &sendProgress{bytes: true, bar: progressbar.NewOptions64(total, append(common,
			progressbar.OptionShowBytes(true), progressbar.OptionSetPredictTime(true))...)}
	}
	return &sendProgress{bar: progressbar.NewOptions64(-1, append(common,
		progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("events"),
		progressbar.OptionSpinnerType(14))...)}
}

// reader counts what is read from stdin into the bar; sendFile wraps its
// files through it too.
func (p *sendProgress) reader(stdin io.Reader) func(io.Reader) io.Reader {
	return func(r io.Reader) io.Reader {
		if r == nil {
			r = stdin
		}
		if p.bar == nil || !p.bytes {
			return r
		}
		return io.TeeReader(r, p.bar)
	}
}

// answered counts n events answered by ingest.
func (p *sendProgress) answered(n int) {
	if p.bar != nil && !p.bytes {
		_ = p.bar.Add(n)
	}
}

func (p *sendProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

// sendFile queues the events of one file ("-": stdin), telling queued
// the id and the place ("events.ndjson line 3") of each; open wraps the
// reader of the file, or gives stdin's for nil, counting progress.
func sendFile(ctx context.Context, b *client.Batcher, name string, open func(io.Reader) io.Reader, queued func(id, where string)) error {
	var r io.Reader
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = open(f)
	} else {
		r, name = open(nil), "stdin"
	}
	n := 0 // events queued
	err := readEvents(r, func(event json.RawMessage, line int) error {
		id, err := b.AddJSON(ctx, event)
		if err == nil {
			n++
			queued(id, fmt.Sprintf("%s line %d", name, line))
		}
		return err
	})
	var at *inputError
	if errors.As(err, &at) {
		return &stopError{where: fmt.Sprintf("%s line %d", name, at.line), event: n + 1, err: at.err}
	}
	if err != nil {
		return fmt.Errorf("%s: event %d: %w", name, n+1, err)
	}
	return nil
}

// stopError is the event of an input at which reading stopped.
type stopError struct {
	where string // "stdin line 3"
	event int    // its ordinal in the file
	err   error
}

func (e *stopError) Error() string { return fmt.Sprintf("%s (event %d): %v", e.where, e.event, e.err) }
func (e *stopError) Unwrap() error { return e.err }

// inputError is an event of the input that cannot be read or queued, with
// the line it starts on.
type inputError struct {
	line int
	err  error
}

func (e *inputError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }
func (e *inputError) Unwrap() error { return e.err }

// readEvents calls add for each event of r, with the line it starts on: a
// JSON array of objects, or one or more JSON objects separated by
// whitespace (one object, NDJSON). Gzipped input is read through gzip.
func readEvents(r io.Reader, add func(event json.RawMessage, line int) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	first, skipped, err := firstByte(br)
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return err
	}
	lines := &lineCounter{r: br, before: skipped}
	dec := json.NewDecoder(lines)
	dec.UseNumber()
	lineOf := func(event json.RawMessage) int {
		// The decoder's offset is the end of the event; RawMessage is its
		// bytes exactly.
		lines.mark = dec.InputOffset()
		return lines.lineAt(dec.InputOffset() - int64(len(event)))
	}
	// decodeError places a failed Decode on the line where the value it
	// tried starts: the decoder stops before it, whitespace ahead.
	decodeError := func(err error) error {
		start := dec.InputOffset()
		rest, _ := io.ReadAll(dec.Buffered())
		start += int64(len(rest) - len(bytes.TrimLeft(rest, " \t\r\n,")))
		return &inputError{lines.lineAt(start), err}
	}
	add = func(add func(json.RawMessage, int) error) func(json.RawMessage, int) error {
		return func(event json.RawMessage, line int) error {
			if err := add(event, line); err != nil {
				return &inputError{line, err}
			}
			return nil
		}
	}(add)
	if first == '[' {
		if _, err := dec.Token(); err != nil {
			return err
		}
		for dec.More() {
			var event json.RawMessage
			if err := dec.Decode(&event); err != nil {
				return decodeError(err)
			}
			if err := add(event, lineOf(event)); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return err
		}
		if _, err := dec.Token(); err != io.EOF {
			return errors.New("more after the JSON array; send one array, objects, or NDJSON")
		}
		return nil
	}
	for {
		var event json.RawMessage
		if err := dec.Decode(&event); err == io.EOF {
			return nil
		} else if err != nil {
			return decodeError(err)
		}
		if err := add(event, lineOf(event)); err != nil {
			return err
		}
	}
}

// firstByte returns the first byte that is not JSON whitespace, leaving
// it unread, and the newlines before it.
func firstByte(br *bufio.Reader) (c byte, newlines int, err error) {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return 0, newlines, err
		}
		switch c {
		case '\n':
			newlines++
			continue
		case ' ', '\t', '\r':
			continue
		}
		return c, newlines, br.UnreadByte()
	}
}

// lineCounter reads r and keeps the offsets of the newlines read but not
// yet passed, so that lineAt (called with offsets that never decrease)
// gives the line of an offset in memory bounded by the read-ahead.
type lineCounter struct {
	r      io.Reader
	off    int64
	nl     []int64
	before int // newlines passed
	// mark is the end of the last event read: no event is read further
	// than maxEventBytes past it, so that one runaway event does not
	// take the memory of the machine before it fails.
	mark int64
}

// maxEventBytes bounds the JSON of one event as read: ingest takes no
// request larger than client.MaxRequestBytes, and the decoder may read a
// little of the next event ahead.
const maxEventBytes = client.MaxRequestBytes + 1<<20

var errEventTooLarge = fmt.Errorf("an event of more than %d bytes, larger than any request ingest takes", maxEventBytes)

func (l *lineCounter) Read(p []byte) (int, error) {
	room := l.mark + maxEventBytes - l.off
	if room <= 0 {
		return 0, errEventTooLarge
	}
	if int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.r.Read(p)
	for i, c := range p[:n] {
		if c == '\n' {
			l.nl = append(l.nl, l.off+int64(i))
		}
	}
	l.off += int64(n)
	return n, err
}

// lineAt returns the 1-based line of offset off.
func (l *lineCounter) lineAt(off int64) int {
	i := 0
	for i < len(l.nl) && l.nl[i] < off {
		i++
	}
	l.before += i
	l.nl = append(l.nl[:0], l.nl[i:]...)
	return l.before + 1
}

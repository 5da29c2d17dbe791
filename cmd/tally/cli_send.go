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
	bar := newSendProgress(stderr)
	var mu sync.Mutex
	var reasons []string
	b := c.NewBatcher(ctx, client.BatcherConfig{
		MaxEvents: cfg.batchEvents, MaxBytes: cfg.batchBytes, Linger: cfg.linger, Concurrency: cfg.concurrency,
		OnResult: func(r client.BatchResult) {
			mu.Lock()
			defer mu.Unlock()
			for _, rej := range r.Rejected {
				if len(reasons) < cfg.showReasons {
					reasons = append(reasons, fmt.Sprintf("  %q: %s: %s", rej.ID, rej.Field, rej.Error))
				}
			}
			if bar != nil {
				_ = bar.Add(len(r.IDs))
			}
		},
	})
	var readErr error
	for _, name := range files {
		if readErr = sendFile(ctx, b, name, stdin); readErr != nil {
			break
		}
	}
	sendErr := b.Close(context.Background())
	if bar != nil {
		_ = bar.Finish()
	}
	st := b.Stats()
	summary := fmt.Sprintf("accepted %d, rejected %d", st.Accepted, st.Rejected)
	if st.Failed > 0 {
		summary += fmt.Sprintf(", failed %d", st.Failed)
	}
	fmt.Fprintln(stdout, summary)
	for _, r := range reasons {
		fmt.Fprintln(stdout, r)
	}
	if more := st.Rejected - int64(len(reasons)); more > 0 {
		fmt.Fprintf(stdout, "  ... and %d more\n", more)
	}
	switch {
	case readErr != nil || sendErr != nil:
		return errors.Join(readErr, sendErr)
	case st.Rejected > 0:
		return fmt.Errorf("%d of %d events rejected", st.Rejected, st.Events)
	}
	return nil
}

// newSendProgress is a spinner counting answered events, on stderr when
// it is a terminal; nil otherwise.
func newSendProgress(stderr io.Writer) *progressbar.ProgressBar {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("sending"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

// sendFile queues the events of one file ("-": stdin).
func sendFile(ctx context.Context, b *client.Batcher, name string, stdin io.Reader) error {
	var r io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	} else {
		name = "stdin"
	}
	n := 0
	err := readEvents(r, func(event json.RawMessage) error {
		n++
		_, err := b.AddJSON(ctx, event)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: event %d: %w", name, n+1, err)
	}
	return nil
}

// readEvents calls add for each event of r: a JSON array of objects, or
// one or more JSON objects separated by whitespace (one object, NDJSON).
// Gzipped input is read through gzip.
func readEvents(r io.Reader, add func(json.RawMessage) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	dec := json.NewDecoder(br)
	dec.UseNumber()
	first, err := firstByte(br)
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return err
	}
	if first == '[' {
		if _, err := dec.Token(); err != nil {
			return err
		}
		for dec.More() {
			var event json.RawMessage
			if err := dec.Decode(&event); err != nil {
				return err
			}
			if err := add(event); err != nil {
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
			return err
		}
		if err := add(event); err != nil {
			return err
		}
	}
}

// firstByte returns the first byte that is not JSON whitespace, leaving
// it unread.
func firstByte(br *bufio.Reader) (byte, error) {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c, br.UnreadByte()
	}
}

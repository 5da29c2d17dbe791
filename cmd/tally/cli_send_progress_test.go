package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// On a terminal, `tally send` of files shows a bar of the bytes read, and
// of stdin a count of the events answered.
func TestSendProgress(t *testing.T) {
	file := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(file, bytes.Repeat([]byte(`{"type":"x","customer_id":"c"}`+"\n"), 1000), 0o600); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	p := newSendProgressOn(&out, []string{file})
	if !p.bytes {
		t.Fatal("a file of known size: want a bar of bytes")
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(io.Discard, p.reader(nil)(f)); err != nil {
		t.Fatal(err)
	}
	p.answered(1000) // counted by bytes, not events
	fi, _ := f.Stat()
	if st := p.bar.State(); st.CurrentNum != fi.Size() || st.Max != fi.Size() {
		t.Errorf("progress of a file read whole: %d of %d bytes, want %d of %d", st.CurrentNum, st.Max, fi.Size(), fi.Size())
	}
	p.finish()
	if !strings.Contains(out.String(), "sending") {
		t.Errorf("nothing shown: %q", out.String())
	}

	out.Reset()
	p = newSendProgressOn(&out, []string{"-"})
	if p.bytes {
		t.Fatal("stdin: want a count of events")
	}
	p.answered(7)
	if st := p.bar.State(); st.CurrentNum != 7 {
		t.Errorf("progress on stdin: %d events, want 7", st.CurrentNum)
	}
	p.finish()

	if p := newSendProgress(&out, []string{file}); p.bar != nil {
		t.Error("not a terminal: want no progress")
	}
}

package telemetry

import (
	"errors"
	"flag"
	"fmt"
	"sync"
	"time"
)

// Timeouts bound the connections of a component's HTTP servers, so that a
// slow or stalled client cannot hold a connection (and the goroutine and
// buffers behind it) forever.
type Timeouts struct {
	// ReadHeader bounds reading a request's headers.
	ReadHeader time.Duration
	// Read bounds reading the whole request, body included.
	Read time.Duration
	// Write bounds the time from the end of the request headers to the
	// end of the response. It must exceed every request's own bound
	// (ingest's wait for Kafka, a query's ClickHouse time), which are all
	// below ShutdownTimeout, or an answer would be cut off.
	Write time.Duration
	// Idle bounds how long a kept-alive connection waits for its next
	// request.
	Idle time.Duration
}

// DefaultTimeouts returns the timeouts of a server nothing configured:
// generous against honest clients on slow links (a 60 s upload of ingest's
// largest body is about 170 kB/s), bounded against the rest.
func DefaultTimeouts() Timeouts {
	return Timeouts{ReadHeader: 10 * time.Second, Read: time.Minute, Write: time.Minute, Idle: 2 * time.Minute}
}

// RegisterFlags registers the timeouts as http.* flags, with defaults from
// DefaultTimeouts.
func (t *Timeouts) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultTimeouts()
	fs.DurationVar(&t.ReadHeader, "http.read-header-timeout", d.ReadHeader, "how long an HTTP client may take to send a request's headers")
	fs.DurationVar(&t.Read, "http.read-timeout", d.Read, "how long an HTTP client may take to send a whole request, body included")
	fs.DurationVar(&t.Write, "http.write-timeout", d.Write,
		"how long an HTTP request may take from its headers to the end of its answer (must exceed the 15s shutdown timeout that bounds ingest's wait for Kafka and a query's ClickHouse time)")
	fs.DurationVar(&t.Idle, "http.idle-timeout", d.Idle, "how long an idle kept-alive HTTP connection stays open")
}

// Validate reports every timeout that is not positive, and a write
// timeout that would cut off an answer a request may still give.
func (t Timeouts) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"http.read-header-timeout", t.ReadHeader}, {"http.read-timeout", t.Read}, {"http.idle-timeout", t.Idle}} {
		if f.d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", f.name, f.d))
		}
	}
	if t.Write <= ShutdownTimeout {
		errs = append(errs, fmt.Errorf("http.write-timeout must exceed the shutdown timeout %s, which bounds every request's own work, got %s",
			ShutdownTimeout, t.Write))
	}
	return errors.Join(errs...)
}

var (
	timeoutsMu sync.Mutex
	timeouts   = DefaultTimeouts()
)

// SetTimeouts sets the timeouts of every server of the process that has
// none of its own (all but the admin server), from the next time it runs:
// a command calls it once, after parsing its flags.
func SetTimeouts(t Timeouts) {
	timeoutsMu.Lock()
	defer timeoutsMu.Unlock()
	timeouts = t
}

func currentTimeouts() Timeouts {
	timeoutsMu.Lock()
	defer timeoutsMu.Unlock()
	return timeouts
}

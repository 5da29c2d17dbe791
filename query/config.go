package query

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/tally-oss/tally/internal/telemetry"
)

// Defaults of the query.* flags.
const (
	DefaultListenAddr = "127.0.0.1:8081"
	// DefaultMaxRows bounds one usage response. A result that large is
	// already more than a person reads; bigger exports should page by time.
	DefaultMaxRows = 100_000
	// DefaultTimeout bounds one request's ClickHouse work. It stays below
	// telemetry.ShutdownTimeout so that requests in flight at shutdown
	// still get their real answer.
	DefaultTimeout = 10 * time.Second
)

// MaxWindows bounds the windows one usage query may span, whatever the
// row limit: a year of MINUTE windows is half a million rows per group.
const MaxWindows = 10_000

// Config holds the settings of the query service.
type Config struct {
	// ListenAddr serves the API, /metrics, /healthz and /readyz.
	ListenAddr string
	// MetersFile, if set, is a JSON file of meters by organization that is
	// applied at start (see LoadMetersFile).
	MetersFile string
	// MaxRows is the most rows one usage query may return.
	MaxRows int
	// Timeout bounds the ClickHouse work of one request.
	Timeout time.Duration
	// StatusComponents are the other components whose readiness the
	// status reports (components.go).
	StatusComponents StatusComponents
}

// RegisterFlags registers the query.* flags with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ListenAddr, "query.listen-addr", DefaultListenAddr, "address of the query API and its /metrics, /healthz, /readyz")
	fs.StringVar(&c.MetersFile, "query.meters-file", "", `JSON file of meters applied at start: {"<org_id>": [meter, ...]}; an unchanged meter keeps its revision`)
	fs.IntVar(&c.MaxRows, "query.max-rows", DefaultMaxRows, "most rows one usage query may return (more: 400 asking for a narrower query)")
	fs.DurationVar(&c.Timeout, "query.timeout", DefaultTimeout, "how long one request may spend in ClickHouse before it answers 503")
	fs.Var(&c.StatusComponents, "query.status-components", "components whose readiness GET /api/v1/status reports besides query's own: name=URL of each one's /readyz, comma-separated (e.g. ingest=http://ingest:8080/readyz,aggregator=http://aggregator:8082/readyz); probed at most once a second with a 1s timeout; the status shows only their check names and ok/failing (tally all: its own ingest and aggregator)")
}

// Validate reports every problem with the settings.
func (c *Config) Validate() error {
	var errs []error
	if c.ListenAddr == "" {
		errs = append(errs, errors.New("query.listen-addr is required"))
	}
	if c.MaxRows < 1 {
		errs = append(errs, fmt.Errorf("query.max-rows must be positive, got %d", c.MaxRows))
	}
	if c.Timeout <= 0 || c.Timeout >= telemetry.ShutdownTimeout {
		// A longer timeout would let shutdown cut off queries still running.
		errs = append(errs, fmt.Errorf("query.timeout must be positive and below the shutdown timeout %s, got %s", telemetry.ShutdownTimeout, c.Timeout))
	}
	if err := c.StatusComponents.validate(); err != nil {
		errs = append(errs, fmt.Errorf("query.status-components: %w", err))
	}
	return errors.Join(errs...)
}

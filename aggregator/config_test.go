package aggregator

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/config"
)

func TestConfigDefaultsAreValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.ListenAddr != "127.0.0.1:8082" || c.GroupID != "tally-aggregator" || c.BatchSize != 10_000 || c.BatchLinger != 200*time.Millisecond {
		t.Errorf("defaults: %+v", c)
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	c := DefaultConfig()
	c.GroupID = ""
	c.BatchSize = 0
	c.BatchLinger = 0
	c.RetryMaxInterval = time.Millisecond
	c.FetchMaxBytes = 1000
	c.BatchMaxBytes = 1000
	c.HeartbeatInterval = c.SessionTimeout
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, flagName := range []string{"group-id", "batch-size", "batch-max-bytes", "batch-linger", "retry-initial-interval", "fetch-max-bytes", "heartbeat-interval"} {
		if !strings.Contains(err.Error(), "aggregator."+flagName) {
			t.Errorf("error does not name aggregator.%s:\n%v", flagName, err)
		}
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	t.Setenv("TALLY_AGGREGATOR_BATCH_SIZE", "500")
	t.Setenv("TALLY_AGGREGATOR_STALL_TIMEOUT", "30s")
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"-aggregator.group-id=billing"}); err != nil {
		t.Fatal(err)
	}
	if err := config.ApplyEnv(fs); err != nil {
		t.Fatal(err)
	}
	if c.BatchSize != 500 || c.StallTimeout != 30*time.Second || c.GroupID != "billing" {
		t.Errorf("got batch size %d, stall timeout %s, group %q", c.BatchSize, c.StallTimeout, c.GroupID)
	}
}

// The Reader's queue holds at most FetchMaxBytes of the largest records.
func TestQueueCapacityBoundedInBytes(t *testing.T) {
	for _, tc := range []struct{ fetch, want int }{
		{DefaultFetchMaxBytes, 1},
		{10 << 20, 10},
		{minFetchMaxBytes, 1},
		{1 << 30, defaultPartitionQueueCap},
	} {
		c := DefaultConfig()
		c.FetchMaxBytes = tc.fetch
		if got := c.queueCapacity(); got != tc.want || got*maxRecordBytes > max(tc.fetch, maxRecordBytes) {
			t.Errorf("fetch-max-bytes %d: queue of %d records, want %d", tc.fetch, got, tc.want)
		}
	}
}

package client_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tally-oss/tally/client"
	"github.com/tally-oss/tally/internal/testenv"
)

// The Example tests run against the real pipeline: the tally binary's
// `tally all`, started on first use and stopped when the tests end.
var pipeline struct {
	once sync.Once
	all  *testenv.TallyAll
}

// tally returns the base URL and key of the pipeline, starting it first.
// Examples cannot fail a test, so an error ends the test binary.
func tally() (url, key string) {
	pipeline.once.Do(func() {
		all, err := testenv.StartTallyAll(testenv.TallyAllOptions{})
		if err != nil {
			fmt.Fprintln(os.Stderr, "start tally all for the examples:", err)
			os.Exit(1)
		}
		pipeline.all = all
	})
	return pipeline.all.URL, pipeline.all.Key
}

func TestMain(m *testing.M) {
	testenv.Main(m, func() error {
		if pipeline.all == nil {
			return nil
		}
		return pipeline.all.Stop()
	})
}

// waitForTotal polls the meter's usage until its total is want, for at
// most a minute (events are stored about a quarter of a second after they
// are accepted), and returns the last answer.
func waitForTotal(ctx context.Context, c *client.Client, meter string, q client.UsageQuery, want string) client.Usage {
	deadline := time.Now().Add(time.Minute)
	for {
		u, err := c.Usage(ctx, meter, q)
		if err != nil {
			fmt.Println("usage:", err)
			return u
		}
		if u.Total().Equal(decimal.RequireFromString(want)) || time.Now().After(deadline) {
			return u
		}
		time.Sleep(100 * time.Millisecond)
	}
}

package testenv

import (
	"sync"
	"time"
)

// Clock is a settable clock for the caches tests expire by hand (the
// readiness cache, the status probes' cache): Now is what the code under
// test reads, Advance moves it.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock that reads t until advanced.
func NewClock(t time.Time) *Clock {
	return &Clock{t: t}
}

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

package measure

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/catalogstore"
	"github.com/tally-oss/tally/internal/meterstore"
	"github.com/tally-oss/tally/query/billing"
	"github.com/tally-oss/tally/query/rating"
	"github.com/tally-oss/tally/query/usage"
)

// TestUsageAcrossDST reads usage per billing period and per New York day
// over the end of February and the day DST starts (2026-03-08, 23 hours),
// against figures worked out by hand:
//
//	February period, clipped to [02-25 05:00Z, 03-01 05:00Z):
//	  02-26 us 2.5, 02-26 eu 0.25, 02-28 22:00 EST (03-01 03:00Z) us 5 -> 7.75
//	March period, clipped to [03-01 05:00Z, 03-10 04:00Z):
//	  03-01 00:00 EST eu 7; 03-08 23:30 EDT (03-09 03:30Z) us 11;
//	  03-09 00:30 EDT (03-09 04:30Z) us 13 -> 31
//
// A fixed UTC-5 offset would put the 04:30Z reading on March 8 and end
// that day at 05:00Z; the real zone ends it at 04:00Z.
func TestUsageAcrossDST(t *testing.T) {
	e := newEnv(t)
	f := setup(e)
	e.insert(
		f.tokensAt("before-subscription", "2026-01-25T12:00:00Z", "100", "us"),
		f.tokensAt("before-range", "2026-02-20T12:00:00Z", "100", "us"),
		f.tokensAt("a", "2026-02-26T15:00:00Z", "2.5", "us"),
		f.tokensAt("b", "2026-02-26T16:00:00Z", "0.25", "eu"),
		f.tokensAt("c", "2026-03-01T03:00:00Z", "5", "us"),
		f.tokensAt("d", "2026-03-01T05:00:00Z", "7", "eu"),
		f.tokensAt("e", "2026-03-09T03:30:00Z", "11", "us"),
		f.tokensAt("f", "2026-03-09T04:30:00Z", "13", "us"),
		f.tokensAt("at-end", "2026-03-10T04:00:00Z", "1000", "us"),
		reading{org: "acme", meter: "tokens", revision: f.tokens.Revision, customer: "someone-else", eventID: "x",
			time: "2026-03-02T12:00:00Z", value: "500", groups: map[string]string{"region": "us"}},
		reading{org: "globex", meter: "tokens", revision: f.globexTokens.Revision, customer: "cust-1", eventID: "y",
			time: "2026-03-02T12:00:00Z", value: "900"},
	)

	u := e.usageOK(keyAcme, acmeUsagePath, usageBody("ch_tokens", "2026-02-25T05:00:00Z", "2026-03-10T04:00:00Z"))
	wantLines(t, "usage", u.lines(),
		"2026-02-25T05:00:00Z..2026-03-01T05:00:00Z = 7.75",
		"  2026-02-26T05:00:00Z..2026-02-27T05:00:00Z region=eu = 0.25",
		"  2026-02-26T05:00:00Z..2026-02-27T05:00:00Z region=us = 2.5",
		"  2026-02-28T05:00:00Z..2026-03-01T05:00:00Z region=us = 5",
		"2026-03-01T05:00:00Z..2026-03-10T04:00:00Z = 31",
		"  2026-03-01T05:00:00Z..2026-03-02T05:00:00Z region=eu = 7",
		"  2026-03-08T05:00:00Z..2026-03-09T04:00:00Z region=us = 11",
		"  2026-03-09T04:00:00Z..2026-03-10T04:00:00Z region=us = 13",
	)
	for i, from := range []string{"2026-02-01T05:00:00Z", "2026-03-01T05:00:00Z"} {
		want := fmt.Sprintf("sub-1:ch_tokens:%d", mustTime(from).Unix())
		if i < len(u.Usage) && u.Usage[i].RecordID != want {
			t.Errorf("period %d: record id %q, want %q", i, u.Usage[i].RecordID, want)
		}
	}
	for _, p := range u.Usage {
		for _, b := range p.Breakdown {
			if b.Breakout == nil || len(b.Breakout) != 0 {
				t.Errorf("breakout %v, want {}", b.Breakout)
			}
		}
	}

	// A range that starts and ends mid-day clips the days to it.
	u = e.usageOK(keyAcme, acmeUsagePath, usageBody("ch_tokens", "2026-03-08T12:00:00Z", "2026-03-09T12:00:00Z"))
	wantLines(t, "mid-day range", u.lines(),
		"2026-03-08T12:00:00Z..2026-03-09T12:00:00Z = 24",
		"  2026-03-08T12:00:00Z..2026-03-09T04:00:00Z region=us = 11",
		"  2026-03-09T04:00:00Z..2026-03-09T12:00:00Z region=us = 13",
	)
	// The same record id whatever part of the period is asked for.
	if want := fmt.Sprintf("sub-1:ch_tokens:%d", mustTime("2026-03-01T05:00:00Z").Unix()); len(u.Usage) != 1 || u.Usage[0].RecordID != want {
		t.Errorf("record id of a part of March: %+v, want %q", u.Usage, want)
	}

	// Nothing is counted before the subscription starts; a period without
	// usage is reported with 0 and no breakdown.
	u = e.usageOK(keyAcme, acmeUsagePath, usageBody("ch_tokens", "2026-01-20T00:00:00Z", "2026-02-02T00:00:00Z"))
	wantLines(t, "before the subscription", u.lines(), "2026-02-01T05:00:00Z..2026-02-02T00:00:00Z = 0")

	// An empty range (Measure's own example has equal dates) has no usage.
	code, body, _ := e.post(keyAcme, acmeUsagePath, usageBody("ch_tokens", "2026-03-02T00:00:00Z", "2026-03-02T00:00:00Z"))
	if u := decodeUsage(t, body); code != 200 || u.Usage == nil || len(u.Usage) != 0 {
		t.Errorf("empty range: %d %s", code, body)
	}
}

// TestUsageOfACountMeter reads a meter without group keys: the grouping
// of every day is {}.
func TestUsageOfACountMeter(t *testing.T) {
	e := newEnv(t)
	f := setup(e)
	call := func(id, at string) reading {
		return reading{org: "acme", meter: "calls", revision: f.calls.Revision, customer: "cust-1", eventID: id, time: at, value: "0"}
	}
	e.insert(call("1", "2026-03-03T10:00:00Z"), call("2", "2026-03-03T11:00:00Z"), call("3", "2026-03-05T10:00:00Z"))
	u := e.usageOK(keyAcme, acmeUsagePath, usageBody("ch_calls", "2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z"))
	wantLines(t, "calls", u.lines(),
		"2026-03-01T05:00:00Z..2026-04-01T04:00:00Z = 3",
		"  2026-03-03T05:00:00Z..2026-03-04T05:00:00Z = 2",
		"  2026-03-05T05:00:00Z..2026-03-06T05:00:00Z = 1",
	)
	if r := u.Metric.MeteringRule; r.Aggregator != "count" || r.Property != "" || r.Rule != "" || r.GroupKeys == nil || len(r.GroupKeys) != 0 {
		t.Errorf("metering rule of a COUNT meter without filter: %+v", r)
	}
	for _, b := range u.Usage[0].Breakdown {
		if b.Grouping == nil || len(b.Grouping) != 0 {
			t.Errorf("grouping %v, want {}", b.Grouping)
		}
	}
}

// TestUsageEqualsBilling checks that a whole billing period's value is the
// quantity billing prices (what Lago's current_usage and the native usage
// report as units).
func TestUsageEqualsBilling(t *testing.T) {
	e := newEnv(t)
	f := setup(e)
	e.insert(
		f.tokensAt("a", "2026-03-01T03:00:00Z", "5", "us"), // February in New York
		f.tokensAt("b", "2026-03-04T12:00:00Z", "1234.5", "us"),
		f.tokensAt("c", "2026-03-31T12:00:00Z", "0.125", "eu"),
		f.tokensAt("d", "2026-04-01T03:59:59Z", "3", "eu"), // still March in New York
	)
	usageSvc := usage.NewService(e.meters, usage.NewClickHouseReader(e.conn, 10000, nil), meterstore.ErrNotFound)
	bill := billing.New(e.catalog, usageSvc, catalogstore.ErrNotFound, 10000)
	ctx := context.Background()
	sub, err := bill.Load(ctx, "acme", "sub-1")
	if err != nil {
		t.Fatal(err)
	}
	march := rating.PeriodAt(sub.Subscription, sub.Plan.Interval, sub.Location, mustTime("2026-03-15T00:00:00Z"))
	priced, err := bill.Price(ctx, "acme", sub, march)
	if err != nil {
		t.Fatal(err)
	}
	u := e.usageOK(keyAcme, acmeUsagePath, usageBody("ch_tokens", march.From.UTC().Format(time.RFC3339), march.To.UTC().Format(time.RFC3339)))
	if len(u.Usage) != 1 {
		t.Fatalf("usage of March: %q", u.lines())
	}
	for _, line := range priced.Invoice.Charges {
		if line.Charge.ID == "ch_tokens" && line.Units.String() != u.Usage[0].Value.String() {
			t.Errorf("Measure value %s, billing units %s", u.Usage[0].Value, line.Units)
		}
	}
	if got := u.Usage[0].Value.String(); got != "1237.625" {
		t.Errorf("March value %s, want 1234.5 + 0.125 + 3 = 1237.625", got)
	}
}

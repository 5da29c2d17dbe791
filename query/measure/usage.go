package measure

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tally-oss/tally/query/billing"
	"github.com/tally-oss/tally/query/rating"
	"github.com/tally-oss/tally/query/usage"
	"github.com/tally-oss/tally/schemas"
)

// span is a half-open time range [from, to).
type span struct{ from, to time.Time }

// clip returns the part of [from, to) inside s.
func (s span) clip(from, to time.Time) span {
	if from.Before(s.from) {
		from = s.from
	}
	if to.After(s.to) {
		to = s.to
	}
	return span{from, to}
}

func (s span) period() period {
	return period{StartDate: formatTime(s.from), EndDate: formatTime(s.to)}
}

// chargeMeter is the meter a charge is on; found is false when the meter
// was deleted since the plan was written (its usage is then zero, as
// billing counts it).
type chargeMeter struct {
	meter schemas.Meter
	found bool
}

// DefaultMaxRows is the row limit when Deps.MaxRows is 0: the query
// service's default of query.max-rows.
const DefaultMaxRows = 100_000

// errTooManyRows means the breakdown of the whole response has more rows
// than the limit, though each period's alone may not.
var errTooManyRows = errors.New("the breakdown has more rows than the limit")

// usageOf reads the usage of a charge's meter for the subscription's
// customer, one entry per billing period overlapping the requested range:
// the period clipped to the range, the meter's aggregation over it, and
// the same per day of the subscription's time zone and per group. The
// period's value is its own query, never a sum of the breakdown: MAX, AVG,
// UNIQUE_COUNT and LATEST do not add up across days or groups.
//
// maxRows bounds the breakdown rows of all periods together, so that the
// response, not each period, stays within the limit: a year of a weekly
// plan would otherwise hold 53 times the limit. The periods are read one
// at a time and the count checked after each, so at most the limit plus
// one period's rows (which the reader bounds by the same limit) are held
// before errTooManyRows. The period entries themselves (at most 54 in
// MaxRangeDays) are not counted.
func usageOf(ctx context.Context, reader *usage.Service, orgID string, sub billing.Subscription, c schemas.Charge,
	cm chargeMeter, requested span, maxRows int) ([]usagePeriod, error) {
	schedule, err := rating.NewSchedule(sub.Subscription, sub.Plan.Interval, sub.Location)
	if err != nil {
		return nil, fmt.Errorf("billing periods of subscription %q: %w", sub.Subscription.ExternalID, err)
	}
	out := []usagePeriod{}
	rows := 0
	for _, p := range schedule.Periods(requested.from, requested.to) {
		clipped := requested.clip(p.From, p.To)
		entry := usagePeriod{
			Breakdown: []breakdownEntry{}, Period: clipped.period(), Value: "0",
			SubscriptionMetricRecordID: fmt.Sprintf("%s:%s:%d", sub.Subscription.ExternalID, c.ID, p.From.Unix()),
		}
		if cm.found && clipped.from.Before(clipped.to) {
			if err := readPeriod(ctx, reader, orgID, sub, cm.meter, clipped, &entry); err != nil {
				return nil, err
			}
			if rows += len(entry.Breakdown); rows > maxRows {
				return nil, errTooManyRows
			}
		}
		out = append(out, entry)
	}
	return out, nil
}

func readPeriod(ctx context.Context, reader *usage.Service, orgID string, sub billing.Subscription, m schemas.Meter,
	p span, entry *usagePeriod) error {
	q := usage.ForMeter(orgID, m, p.from, p.to)
	q.CustomerIDs = []string{sub.Subscription.ExternalCustomerID}
	rows, err := reader.Read(ctx, q)
	if err != nil {
		return fmt.Errorf("usage of meter %s: %w", m.Key, err)
	}
	for _, r := range rows { // at most one: no windows, no groups
		entry.Value = number(r.Value)
	}

	keys := m.GroupKeys()
	q.WindowSize, q.Location, q.GroupBy = usage.WindowDay, sub.Location, keys
	if rows, err = reader.Read(ctx, q); err != nil {
		return fmt.Errorf("daily usage of meter %s: %w", m.Key, err)
	}
	for _, r := range rows {
		grouping := make(map[string]string, len(keys))
		for i, k := range keys {
			grouping[k] = r.GroupValues[i]
		}
		day := p.clip(r.WindowStart, r.WindowEnd)
		entry.Breakdown = append(entry.Breakdown, breakdownEntry{Breakout: map[string]string{}, Grouping: grouping,
			Period: day.period(), Value: number(r.Value)})
	}
	return nil
}

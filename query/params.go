package query

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	// The IANA time zone database, embedded: window_time_zone must work
	// the same in a minimal container image without /usr/share/zoneinfo.
	_ "time/tzdata"
	"unicode/utf8"

	"github.com/tally-oss/tally/query/usage"
	"github.com/tally-oss/tally/schemas"
)

// maxValues bounds the customer ids and filter values of one query; more
// belongs in a group_by over all customers.
const maxValues = 1000

var (
	singleParams = []string{"from", "to", "window_size", "window_time_zone"}
	listParams   = []string{"customer_id", "group_by"}
	filterParam  = regexp.MustCompile(`^filter\[(.*)\]$`)
	// zoneName keeps time zones plain (they are bound, but also logged and
	// echoed); time.LoadLocation has the final say.
	zoneName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$`)
	// The range DateTime columns can hold.
	minTime = time.Unix(0, 0)
	maxTime = time.Date(2106, 1, 1, 0, 0, 0, 0, time.UTC)
)

// parseUsageParams validates the query string of a usage request for meter
// and returns every problem, each naming its parameter. Unknown parameters
// are errors: a misspelt window_size silently ignored would return numbers
// that look right and are not.
func parseUsageParams(orgID string, meter *schemas.Meter, values url.Values, now time.Time) (usage.Query, []*errorDetail) {
	p := &paramParser{values: values, meter: meter}
	q := usage.Query{OrgID: orgID, MeterKey: meter.Key, Revision: meter.Revision, Aggregation: meter.Aggregation, Location: time.UTC}
	filters := p.checkNames()
	p.zoneAndWindow(&q)
	rangeOK := p.timeRange(&q, now)
	p.groups(&q, filters)
	if rangeOK && q.WindowSize != usage.WindowNone {
		if n := q.WindowSize.CountWindows(q.From, q.To, q.Location, MaxWindows); n > MaxWindows {
			p.fail("window_size", "the range holds more than %d %s windows; use a larger window_size or a shorter range", MaxWindows, q.WindowSize)
		}
	}
	return q, p.errs
}

// paramParser collects the problems of one query string.
type paramParser struct {
	values url.Values
	meter  *schemas.Meter
	errs   []*errorDetail
}

func (p *paramParser) fail(param, format string, args ...any) {
	p.errs = append(p.errs, &errorDetail{Field: param, Message: fmt.Sprintf(format, args...)})
}

// checkNames rejects unknown and repeated parameters and returns the
// filter[<key>] values by key.
func (p *paramParser) checkNames() map[string][]string {
	filters := map[string][]string{}
	for _, name := range slices.Sorted(maps.Keys(p.values)) {
		vals := p.values[name]
		switch {
		case slices.Contains(singleParams, name):
			if len(vals) > 1 {
				p.fail(name, "is given %d times; give it once", len(vals))
			}
		case slices.Contains(listParams, name):
		case filterParam.MatchString(name):
			key := filterParam.FindStringSubmatch(name)[1]
			if !p.meter.HasGroupKey(key) {
				p.fail(name, "meter %s has no group key %q; filter by customer_id or one of %v", p.meter.Key, key, p.meter.GroupKeys())
				continue
			}
			filters[key] = append(filters[key], vals...)
		default:
			p.fail(name, "unknown parameter; use from, to, window_size, window_time_zone, customer_id, group_by or filter[<group key>]")
		}
	}
	return filters
}

func (p *paramParser) zoneAndWindow(q *usage.Query) {
	if v, ok := p.values["window_time_zone"]; ok {
		loc, err := loadZone(v[0])
		if err != nil {
			p.fail("window_time_zone", "%v", err)
		} else {
			q.Location = loc
		}
	}
	if v, ok := p.values["window_size"]; ok {
		q.WindowSize = usage.WindowSize(strings.ToUpper(v[0]))
		if !slices.Contains(usage.WindowSizes, q.WindowSize) {
			p.fail("window_size", "%q must be one of %v, or absent for one row per group over the whole range", v[0], usage.WindowSizes)
		}
	}
}

// timeRange sets [from, to), by default the current month so far in the
// query's zone, and reports whether it is valid.
func (p *paramParser) timeRange(q *usage.Query, now time.Time) bool {
	ok := true
	q.From, q.To = usage.WindowMonth.Start(now, q.Location), now
	for _, bound := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		v, given := p.values[bound.name]
		if !given {
			continue
		}
		t, err := parseTime(v[0])
		if err != nil {
			p.fail(bound.name, "%v", err)
			ok = false
			continue
		}
		*bound.dst = t
	}
	if ok && !q.From.Before(q.To) {
		p.fail("from", "%s must be before to (%s); the range is half-open [from, to), from defaults to the start of the current month and to to now",
			q.From.Format(time.RFC3339Nano), q.To.Format(time.RFC3339Nano))
		ok = false
	}
	return ok
}

// groups sets the customers, group keys and group filters. Customers and
// filter values are sorted and deduplicated (the order means nothing);
// group keys keep the request's order, which is the CSV column order.
func (p *paramParser) groups(q *usage.Query, filters map[string][]string) {
	q.CustomerIDs = slices.Compact(slices.Sorted(slices.Values(p.values["customer_id"])))
	for _, id := range q.CustomerIDs {
		if id == "" || utf8.RuneCountInString(id) > schemas.MaxCustomerIDLen {
			p.fail("customer_id", "must be 1 to %d characters", schemas.MaxCustomerIDLen)
			break
		}
	}
	for _, list := range p.values["group_by"] {
		// Group keys cannot hold commas, so "a,b" is unambiguous.
		for key := range strings.SplitSeq(list, ",") {
			key = strings.TrimSpace(key)
			switch {
			case !p.meter.HasGroupKey(key):
				p.fail("group_by", "meter %s has no group key %q; use customer_id or one of %v", p.meter.Key, key, p.meter.GroupKeys())
			case !slices.Contains(q.GroupBy, key):
				q.GroupBy = append(q.GroupBy, key)
			}
		}
	}
	total := len(q.CustomerIDs)
	for _, key := range slices.Sorted(maps.Keys(filters)) {
		vals := slices.Compact(slices.Sorted(slices.Values(filters[key])))
		q.Filters = append(q.Filters, usage.GroupFilter{Key: key, Values: vals})
		total += len(vals)
	}
	if total > maxValues {
		param := "filter"
		if len(q.CustomerIDs) > maxValues {
			param = "customer_id"
		}
		p.fail(param, "%d customer_id and filter values given, at most %d allowed; group by the key instead", total, maxValues)
	}
}

// parseTime parses an RFC 3339 time, fractional seconds included.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		hint := ""
		if strings.Contains(s, " ") {
			// An unescaped '+' in a query string arrives as a space.
			hint = "; encode '+' in the offset as %2B"
		}
		return time.Time{}, fmt.Errorf("%q must be an RFC 3339 time such as 2024-03-01T00:00:00Z or 2024-03-01T00:00:00-05:00%s", s, hint)
	}
	if t.Before(minTime) || !t.Before(maxTime) {
		return time.Time{}, fmt.Errorf("%q is outside the range usage is stored for (1970 to 2105)", s)
	}
	return t, nil
}

// loadZone loads an IANA time zone. "Local" is refused: it would mean
// whatever zone the server happens to run in.
func loadZone(name string) (*time.Location, error) {
	if !zoneName.MatchString(name) || name == "Local" {
		return nil, fmt.Errorf("%q must be an IANA time zone name such as UTC, Europe/Berlin or America/New_York", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q; use an IANA name such as Europe/Berlin or America/New_York", name)
	}
	return loc, nil
}

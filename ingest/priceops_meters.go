package ingest

import (
	"fmt"
	"strings"

	"github.com/tally-oss/tally/schemas"
)

// usageMeters are an organization's live meters, read once per usage
// record: by key for the items' resources, and by event type for the
// other meters that would see an item's event.
//
// The aggregator meters an event with every meter of its organization
// and event type, so the event of an item (type = the resource meter's
// event_type) is also metered by any other meter of that type that its
// properties pass. An item is the resource's usage alone: a record whose
// item another meter would count too (a COUNT "requests" beside the SUM
// "API" of one type) is refused, naming that meter.
type usageMeters struct {
	byKey  map[string]schemas.Meter
	byType map[string][]schemas.Meter // validated, in the catalog's order
}

func newUsageMeters(meters []schemas.Meter) usageMeters {
	ms := usageMeters{byKey: make(map[string]schemas.Meter, len(meters)), byType: map[string][]schemas.Meter{}}
	for _, m := range meters {
		ms.byKey[m.Key] = m
		// A stored meter that no longer validates meters nothing: the
		// aggregator skips it too. usageEvent reports it as a resource.
		if m.Validate() == nil {
			ms.byType[m.EventType] = append(ms.byType[m.EventType], m)
		}
	}
	return ms
}

// alsoMetering returns what each other meter of meter's event type would
// do with an event of these properties: count it (it matches) or
// dead-letter it (it matches but cannot meter it). nil when none would
// see it.
func (ms usageMeters) alsoMetering(meter schemas.Meter, props map[string]any) []string {
	var parts []string
	for _, other := range ms.byType[meter.EventType] {
		if other.Key == meter.Key {
			continue
		}
		_, matched, err := other.Evaluate(props)
		switch {
		case err != nil:
			parts = append(parts, fmt.Sprintf("the meter %q would dead-letter this item (%v)", other.Key, err))
		case matched:
			parts = append(parts, fmt.Sprintf("the meter %q would count this item too", other.Key))
		}
	}
	return parts
}

// otherMetersProblem is the problem of an item that other meters would
// meter too; parts come from alsoMetering.
func otherMetersProblem(field string, meter schemas.Meter, parts []string) fieldProblem {
	return problem(field+".resource", "events of type %q, the event_type of the meter %q, are metered by other meters too: %s. "+
		"An item is metered by the meter of its resource alone: give the meter %q an event_type of its own, "+
		"or give the other meters filters that exclude its event (which carries only the quantity)",
		meter.EventType, meter.Key, strings.Join(parts, "; "), meter.Key)
}

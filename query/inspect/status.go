package inspect

import (
	"context"
	"fmt"
	"time"
)

// Counts are the figures of an organization's pipeline status at Now.
type Counts struct {
	EventsLastHour, EventsLast24h uint64
	// LatestIngestedAt is when the newest stored event was accepted; zero
	// when the organization has none.
	LatestIngestedAt   time.Time
	DeadLettersLast24h uint64
}

// eventsSQL counts the events of an organization accepted since the two
// times (an hour and a day ago) and finds the latest acceptance time
// among them. events holds the first version of each identity only (the
// aggregator looks identities up before it stores them), and its copies
// of a row are identical, ingested_at included: so count() over FINAL is
// the number of events, exactly as usage counts its readings, and the
// time condition may filter before the fold (PREWHERE), since it keeps or
// drops every copy of a row alike. That reads ingested_at first and the
// other columns only where it matched: the table is sorted by customer and
// partitioned by event time, so no index can find a day's acceptances.
func eventsSQL(orgID string, hourAgo, dayAgo time.Time) (string, []any) {
	return "SELECT countIf(ingested_at >= toDateTime(?)) AS last_hour, count() AS last_day, max(ingested_at) AS latest" +
			" FROM events FINAL PREWHERE ingested_at >= toDateTime(?) WHERE org_id = ?",
		[]any{hourAgo.Unix(), dayAgo.Unix(), orgID}
}

// latestEventSQL finds the latest acceptance time of an organization's
// events when none came in the last day: one column of its rows.
func latestEventSQL(orgID string) (string, []any) {
	return "SELECT count() AS n, max(ingested_at) AS latest FROM events WHERE org_id = ?", []any{orgID}
}

// Counts returns the figures of orgID's pipeline status at now.
func (r *Reader) Counts(ctx context.Context, orgID string, now time.Time) (Counts, error) {
	if orgID == "" {
		return Counts{}, errNoOrg
	}
	var c Counts
	dayAgo := now.Add(-24 * time.Hour)
	err := r.observe(ctx, "read_status", func(ctx context.Context) error {
		sql, args := eventsSQL(orgID, now.Add(-time.Hour), dayAgo)
		var latest time.Time
		if err := r.conn.QueryRow(ctx, sql, args...).Scan(&c.EventsLastHour, &c.EventsLast24h, &latest); err != nil {
			return fmt.Errorf("count events: %w", err)
		}
		if c.EventsLast24h == 0 {
			var n uint64
			sql, args = latestEventSQL(orgID)
			if err := r.conn.QueryRow(ctx, sql, args...).Scan(&n, &latest); err != nil {
				return fmt.Errorf("find the latest event: %w", err)
			}
			if n == 0 {
				latest = time.Time{} // max() over nothing is 1970
			}
		}
		if !latest.IsZero() {
			c.LatestIngestedAt = latest.UTC()
		}
		where, args := deadLetterWhere(DeadLetterQuery{OrgID: orgID, Since: dayAgo})
		if err := r.conn.QueryRow(ctx, "SELECT count() FROM dead_letters FINAL WHERE "+where, args...).Scan(&c.DeadLettersLast24h); err != nil {
			return fmt.Errorf("count dead letters: %w", err)
		}
		return nil
	})
	return c, err
}

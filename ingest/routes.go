package ingest

// Paths of the compatible write routes, besides Tally's own EventsRoute
// (where Lago's single-event envelope is also accepted).
const (
	// LagoBatchRoute takes Lago's {"events": [...]}.
	LagoBatchRoute = "/api/v1/events/batch"
	// PriceOpsUsageRoute takes PriceOps usage records; ORG_ID must be
	// the API key's organization.
	PriceOpsUsageRoute = "/api/v1/integration/organization/{org_id}/usage"
)

// PublicPaths are the paths of every API route ingest serves: a front
// that serves all of Tally on one address sends these to ingest and the
// rest to query.
var PublicPaths = []string{EventsRoute, LagoBatchRoute, PriceOpsUsageRoute}

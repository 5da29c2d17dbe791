package httpapi

import (
	"net/http"
	"strings"
)

// Route is one API route a package offers: a net/http pattern with its
// method ("GET /api/v1/customers/{external_id}") and the handler, which
// runs after authentication (OrgID is set). The component that serves it
// adds authentication and metrics, so the dialect packages stay plain
// handlers.
type Route struct {
	Pattern string
	Handler http.HandlerFunc
}

// Path returns the pattern without its method: the low-cardinality route
// label of metrics.
func (r Route) Path() string {
	if _, path, ok := strings.Cut(r.Pattern, " "); ok {
		return path
	}
	return r.Pattern
}

// CodeForbidden is the error code of a request for another organization's
// data named in the path (PriceOps' ORG_ID).
const CodeForbidden = "forbidden"

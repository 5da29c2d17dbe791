package testenv

import (
	"net/http"
	"testing"

	"github.com/tally-oss/tally/internal/httpapi"
)

// RoutesMux serves routes behind API-key authentication, as the query
// service mounts them (without its metrics), for the organizations and
// keys of keySpec ("org:key,org:key").
func RoutesMux(t testing.TB, keySpec string, routes []httpapi.Route) *http.ServeMux {
	t.Helper()
	keys := &httpapi.Keys{}
	if err := keys.AddSpec(keySpec); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, r := range routes {
		mux.Handle(r.Pattern, httpapi.Authenticate(keys, r.Handler))
	}
	return mux
}

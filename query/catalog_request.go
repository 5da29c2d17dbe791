package query

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tally-oss/tally/internal/httpapi"
)

// maxCatalogBytes bounds a catalog request body: a plan with 100 charges
// of 100 tiers each fits.
const maxCatalogBytes = 1 << 20

// readCatalogBody reads a JSON request body of at most maxCatalogBytes, or
// writes the error response.
func readCatalogBody(w http.ResponseWriter, r *http.Request, what string) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			httpapi.WriteError(w, http.StatusUnsupportedMediaType, httpapi.CodeUnsupportedMedia,
				"send the "+what+" as Content-Type: application/json")
			return nil, false
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCatalogBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			httpapi.WriteError(w, http.StatusRequestEntityTooLarge, httpapi.CodeTooLarge, "a "+what+" must be at most 1 MiB")
			return nil, false
		}
		httpapi.WriteError(w, http.StatusBadRequest, httpapi.CodeBadRequest, "could not read the request body: "+err.Error())
		return nil, false
	}
	return body, true
}

// bodyObject returns the members of a JSON object body, unwrapping Lago's
// {"<entity>": {...}} as the schemas parsers do, and the raw object they
// came from. ok is false when the body is not an object; the parser then
// says what is wrong with it.
func bodyObject(body []byte, entity string) (members map[string]json.RawMessage, object json.RawMessage, ok bool) {
	if json.Unmarshal(body, &members) != nil || members == nil {
		return nil, nil, false
	}
	object = body
	if inner, wrapped := members[entity]; wrapped && len(members) == 1 {
		members = nil
		if json.Unmarshal(inner, &members) != nil || members == nil {
			return nil, nil, false
		}
		object = inner
	}
	return members, object, true
}

// withMember returns the JSON object text object with the member name set
// to value in front, unless it has that member already. The object's
// own text is kept, so that the parser still sees a member given twice.
func withMember(object json.RawMessage, name string, value any) []byte {
	object = bytes.TrimSpace(object)
	member, _ := json.Marshal(map[string]any{name: value}) // {"name":value}
	rest := bytes.TrimSpace(object[1:])                    // after '{'
	if len(rest) > 0 && rest[0] == '}' {
		return member
	}
	out := append(member[:len(member)-1:len(member)-1], ',')
	return append(out, rest...)
}

// queryParams parses the query string against the parameters a route
// takes: unknown and repeated parameters are errors, since a misspelt
// filter silently ignored answers a question nobody asked.
func queryParams(r *http.Request, allowed ...string) (map[string]string, []*errorDetail) {
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, []*errorDetail{{Field: "query", Message: "the query string is malformed: " + err.Error()}}
	}
	out := make(map[string]string, len(values))
	var details []*errorDetail
	for _, name := range slices.Sorted(maps.Keys(values)) {
		switch {
		case !slices.Contains(allowed, name):
			details = append(details, &errorDetail{Field: name, Message: "unknown parameter; use " + strings.Join(allowed, ", ")})
		case len(values[name]) > 1:
			details = append(details, &errorDetail{Field: name, Message: "is given " + strconv.Itoa(len(values[name])) + " times; give it once"})
		default:
			out[name] = values[name][0]
		}
	}
	return out, details
}

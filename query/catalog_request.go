package query

import (
	"bytes"
	"encoding/base64"
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
	"unicode/utf8"

	"github.com/tally-oss/tally/internal/httpapi"
)

// maxCatalogBytes bounds a catalog request body: a plan with 100 charges
// of 100 tiers each fits.
const maxCatalogBytes = 1 << 20

// Pagination of the catalog lists.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

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

// page is a validated ?limit= and ?cursor=.
type page struct {
	limit int
	after string // list keys greater than this
}

// pageParams are the parameters of every list.
var pageParams = []string{"limit", "cursor"}

// parsePage reads limit (1 to maxPageSize, default defaultPageSize) and
// cursor (the next_cursor of the previous page).
func parsePage(params map[string]string) (page, []*errorDetail) {
	p := page{limit: defaultPageSize}
	var details []*errorDetail
	if v, ok := params["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			details = append(details, &errorDetail{Field: "limit", Message: strconv.Quote(v) + " must be a whole number from 1 to " + strconv.Itoa(maxPageSize)})
		} else {
			p.limit = n
		}
	}
	if v, ok := params["cursor"]; ok {
		after, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(after) == 0 || !utf8.Valid(after) {
			details = append(details, &errorDetail{Field: "cursor", Message: "is not a cursor this API returned; pass next_cursor of the previous page as it is"})
		} else {
			p.after = string(after)
		}
	}
	return p, details
}

// listBody is a page of a catalog list. NextCursor is null on the last
// page.
type listBody[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// pageOf returns the body for items, of which the store was asked for
// limit+1: one more than the page means there is a next page, which starts
// after the page's last key.
func pageOf[T any](items []T, limit int, key func(T) string) listBody[T] {
	body := listBody[T]{Data: items}
	if len(items) > limit {
		body.Data = items[:limit]
		cursor := base64.RawURLEncoding.EncodeToString([]byte(key(items[limit-1])))
		body.NextCursor = &cursor
	}
	if body.Data == nil {
		body.Data = []T{} // "data": [], not null
	}
	return body
}

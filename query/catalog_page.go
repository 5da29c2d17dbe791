package query

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Pagination of the catalog lists. A page holds at most limit items and
// at most maxPageBytes of encoded items, whichever comes first: a plan
// may be about 1 MiB (100 charges of 100 tiers) and a customer over
// 200 KB (50 metadata values of 1 KiB), so a page of 1000 of them would
// be hundreds of MiB in one response, and several times that in the
// memory of a query process other organizations share. A page cut short
// by bytes has a next_cursor like any other, and always at least one
// item, so a client that follows next_cursor reads the whole list.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
	maxPageBytes    = 4 << 20
)

// page is a validated ?limit= and ?cursor=.
type page struct {
	limit    int
	maxBytes int    // of the page's encoded items: maxPageBytes
	after    string // list keys greater than this
}

// pageParams are the parameters of every list.
var pageParams = []string{"limit", "cursor"}

// parsePage reads limit (1 to maxPageSize, default defaultPageSize) and
// cursor (the next_cursor of the previous page).
func parsePage(params map[string]string) (page, []*errorDetail) {
	p := page{limit: defaultPageSize, maxBytes: maxPageBytes}
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
type listBody struct {
	Data       []json.RawMessage `json:"data"`
	NextCursor *string           `json:"next_cursor"`
}

// fillPage reads one page of a list batch items at a time, so that
// neither the store's answers nor the page outgrow their bounds: read
// returns at most n items with keys above after, in key order; keep, when
// not nil, drops the items it refuses (a filter the store cannot run).
// The page ends when it is full (by items or bytes; a next_cursor then
// follows its last item) or the list ends (no next_cursor).
func fillPage[T any](p page, batch int, read func(after string, n int) ([]T, error),
	key func(T) string, keep func(T) bool) (listBody, error) {
	b := pageBuilder{limit: p.limit, maxBytes: p.maxBytes}
	after := p.after
	for {
		// One item more than the page, to know whether there is a next
		// page; a filtered list reads at least a default page, so that a
		// sparse filter is not a query per item.
		n := min(batch, p.limit+1-len(b.items))
		if keep != nil {
			n = max(n, min(batch, defaultPageSize))
		}
		items, err := read(after, n)
		if err != nil {
			return listBody{}, err
		}
		for _, item := range items {
			if keep != nil && !keep(item) {
				continue
			}
			added, err := b.add(item, key(item))
			if err != nil {
				return listBody{}, err
			}
			if !added {
				return b.body(), nil
			}
		}
		if len(items) < n {
			return b.body(), nil
		}
		after = key(items[len(items)-1])
	}
}

// pageBuilder collects the encoded items of one page.
type pageBuilder struct {
	limit, maxBytes int
	items           []json.RawMessage
	bytes           int    // of items
	lastKey         string // of the last item in the page
	more            bool   // an item was left for the next page
}

// add appends item, whose list key is key, unless the page is full: it
// has limit items, or item would take it over maxBytes (a page always
// takes its first item). false means item and those after it belong to
// the next page.
func (b *pageBuilder) add(item any, key string) (bool, error) {
	if len(b.items) == b.limit {
		b.more = true
		return false, nil
	}
	raw, err := encodeItem(item)
	if err != nil {
		return false, err
	}
	if len(b.items) > 0 && b.bytes+len(raw) > b.maxBytes {
		b.more = true
		return false, nil
	}
	b.items = append(b.items, raw)
	b.bytes += len(raw)
	b.lastKey = key
	return true, nil
}

// body is the page's response: "data": [] when empty, not null.
func (b *pageBuilder) body() listBody {
	out := listBody{Data: b.items}
	if out.Data == nil {
		out.Data = []json.RawMessage{}
	}
	if b.more {
		cursor := base64.RawURLEncoding.EncodeToString([]byte(b.lastKey))
		out.NextCursor = &cursor
	}
	return out
}

// encodeItem encodes v as httpapi.WriteJSON would (HTML not escaped), so
// the page is measured in the bytes it is sent as.
func encodeItem(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	// A copy the item's size: the buffer may have grown to twice it.
	return bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// Package console is the usage console: a few pages that the query
// service serves at /console (and `tally all` on its one base URL), for
// people who want to look at usage without curl. The pages are HTML
// shells from html/template with vanilla JavaScript and the uPlot chart
// library, all embedded in the binary: no build step, no CDN, nothing
// fetched from elsewhere, so the console works offline.
//
// The console holds no data and no key. The shells are the same for
// everyone; the scripts ask for the API key once, keep it in the
// browser's sessionStorage (gone when the tab closes; never localStorage
// or a cookie, which would send it with every request), and send it only
// in the Authorization header of requests to the public API on the same
// origin. Every number on a page is one the API returned, shown as the
// API's decimal text: JSON numbers are parsed into their text
// (console.js, parseExact), never added or rounded in floating point.
// The chart plots floats, the tables show the exact values.
//
// Every response carries a strict Content-Security-Policy (scripts and
// styles only from the console's own files, requests only to the same
// origin, no framing), X-Content-Type-Options: nosniff and no referrer.
// Assets are named in the pages with a hash of their content, so they are
// cached for good and a new binary's pages load its new files.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// Path is where the console is served.
const Path = "/console"

//go:embed templates assets
var files embed.FS

// page is one page of the console: its path under Path, its title and
// the template that fills the layout's main.
type page struct {
	path, title, name string
}

// pages in the order of the navigation; the first is also Path itself.
var pages = []page{
	{"", "Usage", "usage"},
	{"/meters", "Meters", "meters"},
	{"/customers", "Customers", "customers"},
	{"/dead-letters", "Dead letters", "dead-letters"},
	{"/status", "Status", "status"},
}

// contentTypes are the assets served, by extension; other files under
// assets (the vendored library's LICENSE and VERSION) are not served.
var contentTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
}

// ContentSecurityPolicy is sent with every response of the console.
// uPlot styles its elements through the CSSOM (element.style), which
// style-src does not restrict, so no 'unsafe-inline' is needed.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

type asset struct {
	body        []byte
	contentType string
	version     string // a hash of body, in the URL the pages use
}

// Handler serves the console's pages and assets.
type Handler struct {
	pages  map[string][]byte // rendered once: the pages hold no data
	assets map[string]asset  // by path under assets/
}

// navItem is one link of the navigation.
type navItem struct {
	Href, Title string
	Current     bool
}

// pageData is what the layout is rendered with.
type pageData struct {
	Title, Name string
	Nav         []navItem
}

// New reads the embedded files and renders the pages.
func New() (*Handler, error) {
	h := &Handler{pages: map[string][]byte{}, assets: map[string]asset{}}
	err := fs.WalkDir(files, "assets", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return nil
		}
		body, err := files.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		h.assets[strings.TrimPrefix(name, "assets/")] = asset{body: body, contentType: ct, version: hex.EncodeToString(sum[:6])}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console assets: %w", err)
	}
	funcs := template.FuncMap{"asset": func(name string) (string, error) {
		a, ok := h.assets[name]
		if !ok {
			return "", fmt.Errorf("no console asset %q", name)
		}
		return Path + "/assets/" + name + "?v=" + a.version, nil
	}}
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("console layout: %w", err)
	}
	for _, p := range pages {
		t, err := template.Must(layout.Clone()).ParseFS(files, "templates/"+p.name+".html")
		if err != nil {
			return nil, fmt.Errorf("console page %s: %w", p.name, err)
		}
		data := pageData{Title: p.title, Name: p.name}
		for _, n := range pages {
			data.Nav = append(data.Nav, navItem{Href: Path + n.path, Title: n.title, Current: n.path == p.path})
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return nil, fmt.Errorf("console page %s: %w", p.name, err)
		}
		h.pages[Path+p.path] = buf.Bytes()
	}
	return h, nil
}

// ServeHTTP serves GET and HEAD of Path, its pages and its assets.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	header := w.Header()
	header.Set("Content-Security-Policy", ContentSecurityPolicy)
	header.Set("X-Content-Type-Options", "nosniff")
	header.Set("X-Frame-Options", "DENY")
	header.Set("Referrer-Policy", "no-referrer")
	header.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		header.Set("Allow", "GET, HEAD")
		http.Error(w, "the console is read with GET", http.StatusMethodNotAllowed)
		return
	}
	p := strings.TrimSuffix(r.URL.Path, "/")
	if body, ok := h.pages[p]; ok {
		header.Set("Content-Type", "text/html; charset=utf-8")
		header.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
		return
	}
	if name, ok := strings.CutPrefix(r.URL.Path, Path+"/assets/"); ok {
		if a, ok := h.assets[name]; ok {
			h.serveAsset(w, r, a)
			return
		}
	}
	http.Error(w, "no console page "+r.URL.Path+"; the console is at "+Path, http.StatusNotFound)
}

// serveAsset serves a with a strong ETag; under the URL the pages use
// (its version) it never changes, so it is cached for a year.
func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request, a asset) {
	header := w.Header()
	header.Set("Content-Type", a.contentType)
	header.Set("ETag", `"`+a.version+`"`)
	if r.URL.Query().Get("v") == a.version {
		header.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		header.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

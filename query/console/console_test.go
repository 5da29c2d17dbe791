package console

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func serve(t *testing.T, h http.Handler, method, target string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPages: every page is HTML with the security headers, not cached
// without revalidation, and loads only the console's own scripts and
// styles, by versioned URL; no inline script or style.
func TestPages(t *testing.T) {
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	src := regexp.MustCompile(`(?:src|href)="([^"]+)"`)
	for _, path := range []string{"/console", "/console/", "/console/meters", "/console/customers", "/console/dead-letters", "/console/status/"} {
		resp := serve(t, h, "GET", path)
		html := body(t, resp)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("%s: %d %v", path, resp.StatusCode, resp.Header)
		}
		wantSecurityHeaders(t, path, resp)
		if strings.Contains(html, "<script>") || strings.Contains(html, "style=") || strings.Contains(html, "<style") || regexp.MustCompile(`\son[a-z]+=`).MatchString(html) {
			t.Errorf("%s has inline script or style", path)
		}
		scripts := 0
		for _, m := range src.FindAllStringSubmatch(html, -1) {
			u := m[1]
			if !strings.HasPrefix(u, "/console") {
				t.Errorf("%s links outside the console: %s", path, u)
				continue
			}
			if strings.HasPrefix(u, "/console/assets/") {
				if !strings.Contains(u, "?v=") {
					t.Errorf("%s: asset %s without a version", path, u)
				}
				resp := serve(t, h, "GET", u)
				if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
					t.Errorf("%s: %d %v", u, resp.StatusCode, resp.Header)
				}
				if strings.Contains(u, ".js?") {
					scripts++
				}
			}
		}
		if scripts < 2 {
			t.Errorf("%s loads %d scripts, want console.js and its own", path, scripts)
		}
	}
	if !strings.Contains(body(t, serve(t, h, "GET", "/console")), "uPlot.iife.min.js?v=") {
		t.Error("the usage page does not load uPlot")
	}
}

func wantSecurityHeaders(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	for name, want := range map[string]string{
		"Content-Security-Policy": ContentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s: %s %q, want %q", what, name, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("%s: CSP %q", what, csp)
	}
}

// TestAssets: content types, a strong ETag answered with 304, no long
// caching under a stale version, nothing but scripts and styles served.
func TestAssets(t *testing.T) {
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for name, ct := range map[string]string{
		"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8",
		"vendor/uplot/uPlot.iife.min.js": "text/javascript; charset=utf-8", "vendor/uplot/uPlot.min.css": "text/css; charset=utf-8",
	} {
		resp := serve(t, h, "GET", "/console/assets/"+name+"?v=stale")
		etag := resp.Header.Get("ETag")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ct || resp.Header.Get("Cache-Control") != "no-cache" || etag == "" {
			t.Errorf("%s: %d %v", name, resp.StatusCode, resp.Header)
		}
		wantSecurityHeaders(t, name, resp)
		if resp := serve(t, h, "GET", "/console/assets/"+name, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s with its ETag: %d, want 304", name, resp.StatusCode)
		}
	}
	for _, path := range []string{"/console/assets/vendor/uplot/LICENSE", "/console/assets/vendor/uplot/VERSION", "/console/assets/nope.js",
		"/console/nope", "/console/assets/../templates/layout.html", "/console/templates/layout.html"} {
		if resp := serve(t, h, "GET", path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
	resp := serve(t, h, "POST", "/console")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestVendoredUPlot: the vendored files are the ones VERSION names, and
// the license is next to them.
func TestVendoredUPlot(t *testing.T) {
	note, err := files.ReadFile("assets/vendor/uplot/VERSION")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"uPlot.iife.min.js", "uPlot.min.css"} {
		b, err := files.ReadFile("assets/vendor/uplot/" + name)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if !regexp.MustCompile(regexp.QuoteMeta(name) + `\s+sha256 ` + hex.EncodeToString(sum[:])).Match(note) {
			t.Errorf("%s: sha256 %x is not the one VERSION names", name, sum)
		}
	}
	if license, err := files.ReadFile("assets/vendor/uplot/LICENSE"); err != nil || !strings.Contains(string(license), "MIT License") {
		t.Errorf("uPlot's LICENSE: %v", err)
	}
}

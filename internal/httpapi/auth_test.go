package httpapi

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestAuthenticate(t *testing.T) {
	var keys Keys
	if err := keys.AddSpec("acme:acme-key-0123456789, globex:globex-key-0123456789"); err != nil {
		t.Fatal(err)
	}
	h := Authenticate(&keys, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(OrgID(r.Context())))
	}))
	tests := []struct {
		header   string
		wantCode int
		wantOrg  string
	}{
		{"Bearer acme-key-0123456789", 200, "acme"},
		{"bearer globex-key-0123456789", 200, "globex"},
		{"globex-key-0123456789", 200, "globex"},
		{"", 401, ""},
		{"Bearer nope-nope-nope-nope", 401, ""},
		{"Bearer ", 401, ""},
		{"Basic acme-key-0123456789", 401, ""},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", "/?org_id=globex", nil)
		req.Header.Set("X-Org-Id", "globex")
		if tt.header != "" {
			req.Header.Set("Authorization", tt.header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.wantCode {
			t.Errorf("%q: code %d, want %d", tt.header, rec.Code, tt.wantCode)
		}
		if tt.wantCode == 200 && rec.Body.String() != tt.wantOrg {
			t.Errorf("%q: org %q, want %q", tt.header, rec.Body.String(), tt.wantOrg)
		}
	}
}

func TestKeysRejectBadConfig(t *testing.T) {
	var keys Keys
	for _, spec := range []string{"acme:short", "Bad/Org:0123456789abcdef", "no-colon"} {
		if err := keys.AddSpec(spec); err == nil {
			t.Errorf("AddSpec(%q) accepted", spec)
		}
	}
	if err := keys.Add("a", "0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	if err := keys.Add("b", "0123456789abcdef"); err == nil {
		t.Error("the same key for two organizations was accepted")
	}
}

func TestKeysFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte("# org key\nacme 0123456789abcdef # prod\n\nglobex fedcba9876543210\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var keys Keys
	if err := keys.AddFile(path); err != nil {
		t.Fatal(err)
	}
	if org, ok := keys.Lookup("fedcba9876543210"); !ok || org != "globex" {
		t.Errorf("Lookup = %q, %v", org, ok)
	}
}

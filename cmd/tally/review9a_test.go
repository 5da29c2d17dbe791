package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// review9a F2: the dev key that `tally all` writes into the local data
// directory is a credential of this machine's Tally; without -key and
// TALLY_KEY it must not be sent to another host (TALLY_URL of a staging or
// production deployment, a typo'd host, a proxy that logs headers).
func TestCLIDevKeyOnlyForLocalURL(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dev-api-key"), []byte("tally_dev_0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TALLY_DATA_DIR", dir)
	for _, u := range []string{"https://tally.example.com", "http://10.1.2.3:8000", "http://127.0.0.1.example.com:8000"} {
		c := connFlags{url: u}
		if _, err := c.client(); err == nil || !strings.Contains(err.Error(), "no API key") {
			t.Errorf("-url %s without -key: err %v and key %q; want no API key (the dev key stays local)", u, err, c.key)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"} {
		c := connFlags{url: u}
		if _, err := c.client(); err != nil || c.key != "tally_dev_0123456789abcdef" {
			t.Errorf("-url %s without -key: err %v and key %q; want the dev key", u, err, c.key)
		}
	}
}

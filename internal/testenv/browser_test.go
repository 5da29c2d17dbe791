package testenv

import (
	"strings"
	"testing"
)

// TestMissingChromiumSaysHowToInstall: without a browser, browser tests
// fail (never skip) with the command that installs one.
func TestMissingChromiumSaysHowToInstall(t *testing.T) {
	saved := debianChromium
	t.Cleanup(func() { debianChromium = saved })
	debianChromium = "/nonexistent/chromium"
	t.Setenv("PATH", t.TempDir())
	t.Setenv(EnvChromium, "")
	_, err := chromiumPath()
	if err == nil || !strings.Contains(err.Error(), "make deps") || !strings.Contains(err.Error(), "apt-get install -y chromium") {
		t.Errorf("no browser: %v", err)
	}
}

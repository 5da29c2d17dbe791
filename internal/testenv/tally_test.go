package testenv

import (
	"net/http"
	"os"
	"testing"
)

// StartTallyAll serves the API with its dev key on the one base URL, and
// Stop ends the process and removes its data dir.
func TestStartTallyAll(t *testing.T) {
	all := StartTallyAllT(t, TallyAllOptions{Key: "testenv-dev-key-0123456789"})
	req, err := http.NewRequest(http.MethodGet, all.URL+"/api/v1/meters", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer testenv-dev-key-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/meters with the dev key: %d", resp.StatusCode)
	}
	if err := all.Stop(); err != nil {
		t.Fatal(err)
	}
	if all.cmd.ProcessState == nil || !all.cmd.ProcessState.Exited() || all.cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("tally all did not exit cleanly on SIGTERM: %v\n%s", all.cmd.ProcessState, all.Output())
	}
	if _, err := os.Stat(all.DataDir); !os.IsNotExist(err) {
		t.Errorf("data dir %s still there after Stop: %v", all.DataDir, err)
	}
}

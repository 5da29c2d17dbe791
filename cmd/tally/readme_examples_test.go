package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/tally-oss/tally/internal/testenv"
)

// devKey is the organization "dev" of the README's examples (the one
// `make run` creates).
const devKey = "dev-readme-key-0123456789"

// TestREADMEExamples runs the README's shell examples, from "Try it" to
// the end of "Coming from Measure", in order and as written, against the
// whole pipeline: only the addresses of `make run` are replaced by the
// test's, and TALLY_KEY is the dev organization's key. Each answer must be
// a success, and the figures the README shows must come out. Then the
// examples of the client verbs run (testREADMECLIExamples).
func TestREADMEExamples(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "date"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README examples need %s: %v (make deps installs curl)", tool, err)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	section := testenv.MarkdownSection(t, text, "## Try it", "## How each event counts exactly once")
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1)
	if len(blocks) < 5 {
		t.Fatalf("found %d shell examples, want the Try it, catalog, Lago, PriceOps and Measure ones", len(blocks))
	}

	p := startPipeline(t, "-api-keys=dev:"+devKey)
	var script strings.Builder
	// Every curl also prints its HTTP status on a line of its own.
	script.WriteString("set -eu -o pipefail\nexport TALLY_KEY=" + devKey + "\n" +
		"curl() { command curl -w '\\nHTTP %{http_code}\\n' \"$@\"; }\n")
	for _, b := range blocks {
		for _, line := range strings.Split(b[1], "\n") {
			if strings.HasPrefix(line, "export TALLY_KEY=") {
				continue // the placeholder for the key make run prints
			}
			line = strings.NewReplacer(
				"http://127.0.0.1:8000", p.apiURL,
				"http://127.0.0.1:8080", p.ingestURL,
				"http://127.0.0.1:8082", p.aggURL,
			).Replace(line)
			script.WriteString(line + "\n")
		}
		script.WriteString("echo\n")
	}
	cmd := exec.Command("bash", "-c", script.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README examples failed: %v\n%s", err, out)
	}
	output := string(out)
	// The client verbs continue where the curl examples end.
	testREADMECLIExamples(t, p, text)
	// Every answer is a success.
	statuses := regexp.MustCompile(`(?m)^HTTP (\d{3})$`).FindAllStringSubmatch(output, -1)
	// A curl piped into grep has its status line filtered out.
	calls := len(regexp.MustCompile(`(?m)^curl `).FindAllString(script.String(), -1)) -
		len(regexp.MustCompile(`(?m)^curl .*\| grep`).FindAllString(script.String(), -1))
	if len(statuses) != calls || calls < 15 {
		t.Errorf("%d curl answers for %d calls:\n%s", len(statuses), calls, output)
	}
	for _, st := range statuses {
		if st[1][0] != '2' {
			t.Errorf("an example answered %s:\n%s", st[1], output)
			break
		}
	}
	for _, want := range []string{
		`{"accepted":3,"rejected":[]}`, // Try it
		`"units":1500.5,"events_count":2,"amount":"2.00","amount_cents":200`,
		`"total":{"amount":"100.00","amount_cents":10000}`,                   // the catalog's usage
		`"amount_cents":320,"taxes_amount_cents":0,"total_amount_cents":320`, // Lago
		`"resource_list":["API"]`,                                            // PriceOps
		`{"usage_record_id":"123457","accepted":1}`,
		`"subscription_metric_record_id":"sub_acme:ch_tokens:`, // Measure
		`"value":2100`,
	} {
		if !strings.Contains(output, want) {
			t.Errorf("README examples do not print %s:\n%s", want, output)
		}
	}
}

package client_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tally-oss/tally/internal/testenv"
)

// The Go example of the README's "Command line and Go client" compiles
// against this package: it is built as the body of a main function,
// through a build overlay, so nothing is written into the module.
func TestREADMEGoExampleCompiles(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := testenv.MarkdownSection(t, string(readme), "## Command line and Go client", "## Settings")
	block := regexp.MustCompile("(?s)```go\n(.*?)```").FindStringSubmatch(section)
	if block == nil {
		t.Fatal("no Go example in Command line and Go client")
	}
	// Every variable the example declares is used, as Go requires.
	declared := regexp.MustCompile(`(?m)^(\w+(?:, \w+)*) :=`).FindAllStringSubmatch(block[1], -1)
	var uses []string
	for _, d := range declared {
		for _, name := range strings.Split(d[1], ", ") {
			uses = append(uses, "_ = "+name)
		}
	}
	src := "package main\n\nimport (\n\t\"context\"\n\t\"os\"\n\t\"time\"\n\n\t\"github.com/tally-oss/tally/client\"\n)\n\n" +
		"func main() {\n\tctx := context.Background()\n" + block[1] + "\t" + strings.Join(uses, "\n\t") + "\n}\n"
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	pkgDir, err := filepath.Abs("readmeexample")
	if err != nil {
		t.Fatal(err)
	}
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{filepath.Join(pkgDir, "main.go"): filepath.Join(dir, "main.go")}})
	if err := os.WriteFile(filepath.Join(dir, "overlay.json"), overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-overlay="+filepath.Join(dir, "overlay.json"), "-o", os.DevNull, "./readmeexample")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README's Go example does not build: %v\n%s\n%s", err, out, src)
	}
}

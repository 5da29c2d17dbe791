package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// runHealth is `tally health <url>`: the healthcheck of a container whose
// image has no shell and no curl (deploy/Dockerfile is distroless). It
// GETs the URL and exits 0 on a 2xx answer, 1 on anything else, within
// -health.timeout, so a hung server fails the check rather than the check
// hanging. docker-compose.yml points it at each component's /readyz.
func runHealth(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	timeout := fs.Duration("health.timeout", 3*time.Second, "how long the health command waits for the whole answer before it fails")
	validTimeout := func() error {
		if *timeout <= 0 {
			return fmt.Errorf("health.timeout must be positive, not %s", *timeout)
		}
		return nil
	}
	if err := parseFlagsArgs(fs, args, 1, validTimeout); err != nil {
		return err
	}
	return checkHealth(ctx, fs.Arg(0), *timeout, os.Stdout)
}

// checkHealth GETs url and reports its status line (and the start of the
// body of a failed answer, where readiness says what is wrong) on out.
func checkHealth(ctx context.Context, url string, timeout time.Duration, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, body)
	}
	fmt.Fprintf(out, "%s: %s\n", url, resp.Status)
	return nil
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The load generator against the real pipeline: every event accepted and
// this run's usage exact. A second run with another body format finds the
// meter already there (409) and must count only its own events.
func TestLoadgenAgainstPipeline(t *testing.T) {
	p := startPipeline(t)
	cfg := loadgenConfig{
		IngestURL: p.ingestURL, QueryURL: p.queryURL, APIKey: acmeKey,
		Events: 5000, Batch: 500, Concurrency: 4, Customers: 50,
		Format: "json", Meter: "loadgen_tokens", Verify: true, VerifyTimeout: time.Minute,
	}
	for _, run := range []struct {
		name, format string
		gzip         bool
		events       int
	}{{"json", "json", false, 5000}, {"ndjson-gzip", "ndjson", true, 1234}} {
		t.Run(run.name, func(t *testing.T) {
			c := cfg
			c.Format, c.Gzip, c.Events = run.format, run.gzip, run.events
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			rep, err := generateLoad(context.Background(), c, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatalf("%v\n%+v", err, rep)
			}
			if rep.Accepted != run.events || rep.Rejected != 0 || rep.Failed != 0 {
				t.Errorf("accepted %d, rejected %d, failed requests %d; want %d accepted", rep.Accepted, rep.Rejected, rep.Failed, run.events)
			}
			if !rep.Verified || !rep.Exact || rep.Got.String() != rep.Expected.String() {
				t.Errorf("usage verified %v exact %v: got %s, want %s", rep.Verified, rep.Exact, rep.Got, rep.Expected)
			}
			var out bytes.Buffer
			rep.print(&out, c)
			t.Log("\n" + out.String())
		})
	}
}

// Generated bodies are valid JSON and NDJSON with the ids, customers and
// run the verification relies on.
func TestLoadgenBodies(t *testing.T) {
	type event struct {
		ID         string `json:"id"`
		Type       string `json:"type"`
		CustomerID string `json:"customer_id"`
		Time       time.Time
		Properties struct {
			Tokens json.Number `json:"tokens"`
			RunID  string      `json:"run_id"`
		} `json:"properties"`
	}
	cfg := loadgenConfig{RunID: "r1", Customers: 3}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	cfg.Format = "json"
	var arr []event
	if err := json.Unmarshal(appendEvents(nil, &cfg, 10, 4, now), &arr); err != nil {
		t.Fatal(err)
	}
	cfg.Format = "ndjson"
	var lines []event
	sc := bufio.NewScanner(bytes.NewReader(appendEvents(nil, &cfg, 10, 4, now)))
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		lines = append(lines, e)
	}
	for _, events := range [][]event{arr, lines} {
		if len(events) != 4 {
			t.Fatalf("got %d events, want 4", len(events))
		}
		e := events[3]
		if e.ID != "r1-13" || e.Type != loadgenEventType || e.CustomerID != "loadgen-customer-1" ||
			!e.Time.Equal(now) || e.Properties.Tokens != "0.1" || e.Properties.RunID != "r1" {
			t.Errorf("event 13: %+v", e)
		}
	}
}

// The dev key `tally all` keeps in its data dir is a credential of this
// machine: loadgen sends it to no other host (review 9a F2, as for the
// client verbs).
func TestLoadgenDevKeyOnlyForLocalURLs(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dev-api-key"), []byte("tally_dev_0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TALLY_DATA_DIR", dir)
	err := runLoadgen(context.Background(), []string{"-loadgen.ingest-url=http://127.0.0.1.example.com:8080", "-loadgen.events=1"})
	if err == nil || !strings.Contains(err.Error(), "no API key") {
		t.Fatalf("loadgen to another host with only the dev key: %v, want no API key", err)
	}
}

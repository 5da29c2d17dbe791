package meterstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tally-oss/tally/internal/docstore"
)

// TestListAllNamesInvalidMeters: a stored definition that no longer
// validates is reported with its organization, key, revision and (when
// the JSON is still readable) event type, so that the aggregator can
// dead-letter that meter's events; the valid meters are still returned.
func TestListAllNamesInvalidMeters(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	calls, err := s.Create(ctx, "acme", meter(t, callsDef))
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := s.Create(ctx, "acme", meter(t, tokensDef))
	if err != nil {
		t.Fatal(err)
	}
	// Written around the API, as older rules or an operator might have.
	now := time.Now().UTC()
	for _, r := range []docstore.Row{
		{OrgID: "acme", Key: "tokens", Revision: tokens.Revision, Version: docstore.NextVersion(now, tokens.Revision),
			Definition: `{"key":"tokens","event_type":"llm","aggregation":"BOGUS"}`},
		{OrgID: "globex", Key: "garbled", Revision: 7, Version: 7, Definition: `not json`},
	} {
		if err := s.table.Append(ctx, r, now); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.ListAll(ctx)
	var invalid *InvalidMetersError
	if !errors.As(err, &invalid) {
		t.Fatalf("ListAll error %v, want an *InvalidMetersError", err)
	}
	if len(all["acme"]) != 1 || all["acme"][0].Key != "calls" || all["acme"][0].Revision != calls.Revision {
		t.Errorf("valid meters %v, want acme's calls", all)
	}
	got := map[string]InvalidMeter{}
	for _, m := range invalid.Meters {
		got[m.OrgID+"/"+m.Key] = m
	}
	if m := got["acme/tokens"]; m.Revision != tokens.Revision || m.EventType != "llm" || m.Err == nil {
		t.Errorf("acme/tokens reported as %+v", m)
	}
	if m := got["globex/garbled"]; m.Revision != 7 || m.EventType != "" || m.Err == nil {
		t.Errorf("globex/garbled reported as %+v", m)
	}
	if len(got) != 2 {
		t.Errorf("invalid meters %v, want 2", got)
	}
}

package ingest

import (
	"encoding/json"
	"testing"

	"github.com/tally-oss/tally/schemas"
)

// FuzzDecode feeds arbitrary bodies through the whole request path
// (decompression, framing, validation, encoding) and checks that it never
// panics and always answers a well-formed response consistent with what
// it published. Found crashers are kept in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		event("e1", "c1"),
		string(array(event("e1", "c1"), `{"id":"x"}`, `7`, `null`, `[]`)),
		string(lines(event("e1", "c1"), "", "{", event("e2", "c2"))),
		`[{"id":"a","type":"t","subject":"s","data":{"k":1},"time":"2026-01-02T15:04:05Z"}]`,
		`[`, `]`, `{}`, `[{}`, `[1 2]`, `{"id":"a"} x`, "\xff\xfe", `[{"id":"\ud800","type":"t","customer_id":"c"}]`,
	} {
		f.Add([]byte(seed), false, uint8(0))
		f.Add([]byte(seed), true, uint8(1))
	}
	cfg := testConfig()
	cfg.MaxBodyBytes = 64 << 10
	cfg.MaxEvents = 50
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool, encoding uint8) {
		format := formatJSON
		if ndjson {
			format = formatNDJSON
		}
		// splitEvents on its own, with a limit small enough to hit.
		if events, err := splitEvents(body, format, 3); err == nil && len(events) > 3 {
			t.Fatalf("%d events past a limit of 3", len(events))
		}

		req := request{body: body}
		if ndjson {
			req.contentType = "application/x-ndjson"
		}
		switch encoding % 3 {
		case 1: // a valid gzip stream of the body
			req.body, req.contentEncoding = gz(body), "gzip"
		case 2: // the raw bytes claimed to be gzip
			req.contentEncoding = "gzip"
		}
		pub := &recordingPublisher{}
		s := newTestService(t, cfg, Deps{Publisher: pub})
		code, resp := serve(s.Handler(), req)
		published := pub.published()
		switch code {
		case 202:
			var r Response
			if err := json.Unmarshal(resp, &r); err != nil {
				t.Fatalf("202 body %q: %v", resp, err)
			}
			if r.Accepted < 1 || r.Accepted != len(published) || r.Rejected == nil {
				t.Fatalf("202 body %s with %d published", resp, len(published))
			}
			for i := 1; i < len(r.Rejected); i++ {
				if r.Rejected[i].Index <= r.Rejected[i-1].Index {
					t.Fatalf("rejections out of order: %s", resp)
				}
			}
			for _, m := range published {
				rec, err := schemas.DecodeRecord(m.Value)
				if err != nil || rec.OrgID != "acme" {
					t.Fatalf("published %q: %+v %v", m.Value, rec, err)
				}
			}
		case 400, 413:
			var e errorBody
			if err := json.Unmarshal(resp, &e); err != nil || e.Code == "" || e.Message == "" {
				t.Fatalf("%d body %q: %v", code, resp, err)
			}
			if len(published) != 0 {
				t.Fatalf("%d but published %d records", code, len(published))
			}
		default:
			t.Fatalf("status %d: %s", code, resp)
		}
	})
}

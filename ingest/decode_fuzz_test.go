package ingest

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzSplitArray holds splitArray's one pass (frameArray) to encoding/json's
// reading of the array (splitArrayJSON): the same events, byte for byte,
// or the same error. Run it for minutes after any change to decode.go or
// to schemas.JSONValueEnd:
//
//	go test -run '^$' -fuzz FuzzSplitArray -fuzztime 3m ./ingest/
func FuzzSplitArray(f *testing.F) {
	for _, seed := range []string{
		`[]`, ` [ ] `, `[{}]`, "\t[ {\"id\":\"a\"} ,\n{\"b\":[1,2]} ]\r\n", `[1,"x",null,true,[],{}]`,
		`[`, `]`, `[,]`, `[1,]`, `[1 2]`, `[1}`, `[{"a":1}] x`, `[{"a":1}][]`, `[{"a":` + "\xff" + `"}]`,
		string(array(event("e1", "c1"), event("e2", "c2"), event("e3", "c3"), event("e4", "c4"))),
		"[" + strings.Repeat("[", 70) + strings.Repeat("]", 70) + "]",
	} {
		f.Add([]byte(seed), 3)
	}
	f.Fuzz(func(t *testing.T, body []byte, maxEvents int) {
		maxEvents = 1 + int(uint(maxEvents)%8)
		got, err := splitArray(body, maxEvents)
		want, wantErr := splitArrayJSON(body, maxEvents)
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Fatalf("splitArray(%q, %d): error %v, encoding/json: %v", body, maxEvents, err, wantErr)
		}
		if len(got) != len(want) {
			t.Fatalf("splitArray(%q, %d): %d events, encoding/json: %d", body, maxEvents, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i].raw, want[i].raw) || got[i].line != want[i].line {
				t.Fatalf("splitArray(%q, %d): event %d is %q, encoding/json: %q", body, maxEvents, i, got[i].raw, want[i].raw)
			}
		}
	})
}

// TestFrameArray pins which bodies skip encoding/json: FuzzSplitArray
// would still pass if none did.
func TestFrameArray(t *testing.T) {
	for _, body := range []string{`[]`, " [ {\"a\":1} ,\n{} ]\n", string(array(manyEvents(3)...))} {
		if _, ok := frameArray([]byte(body), 3); !ok {
			t.Errorf("frameArray(%q) leaves it to encoding/json", body)
		}
	}
	for _, body := range []string{`[1,]`, string(array(manyEvents(4)...)), `[{}] x`} {
		if _, ok := frameArray([]byte(body), 3); ok {
			t.Errorf("frameArray(%q) reads it without encoding/json", body)
		}
	}
}

package schemas_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tally-oss/tally/schemas"
)

// EncodeRecord and DecodeRecord are one-pass versions of the encoding/json
// definitions of the record layout (EncodeRecordJSON, DecodeRecordJSON).
// These fuzzers hold them to the same bytes, records and errors; run each
// for minutes after any change to encoding.go or encoding_json.go:
//
//	go test -run '^$' -fuzz FuzzDecodeRecordDifferential -fuzztime 3m ./schemas/
//	go test -run '^$' -fuzz FuzzEncodeRecordDifferential -fuzztime 3m ./schemas/
//	go test -run '^$' -fuzz FuzzSkipJSONValue -fuzztime 3m ./schemas/

// recordSeeds are record values for the decoding fuzzers: what
// EncodeRecord writes, and what encoding/json reads in ways of its own.
var recordSeeds = []string{
	`{"v":1,"org_id":"o","id":"e","type":"t","customer_id":"c","time":"2026-03-15T12:00:00Z","ingested_at":"2026-03-15T12:00:00.000000001Z"}`,
	`{"v":1,"org_id":"o","id":"e","type":"t","customer_id":"c","time":"2026-03-15T12:00:00+05:00","source":"<s>","properties":{ "a" : [ 1, "\u2028", {} ] },"ingested_at":"2026-03-15T12:00:00Z"}`,
	` {"v":1,"org_id":"o","id":"e","type":"t","customer_id":"c","time":"2026-03-15T12:00:00Z","properties":"x","extra":[{"a":[]}],"ingested_at":"2026-03-15T12:00:00Z"} `,
	`{"v":1,"org_id":"o","id":"e","type":"t","customer_id":"c","time":"2026-03-15T12:00:00Z","properties":null}`,
	`{"v":1,"org_id":"o","id":"e","type":"t","customer_id":"c","time":"2026-03-15T12:00:00Z","time":null,"id":null}`,
	`{"v":1,"ORG_ID":"o","Id":"e","tıme":"2026-03-15T12:00:00Z","ſource":"s","type":"t","customer_id":"c","time":"2026-03-15T12:00:00Z"}`,
	`{"v":1,"org_id":"o\u002f","\u0069d":"e\"","type":"\ud83d\ude00","customer_id":"\ud800","time":"2026-03-15T12:00:00Z"}`,
	"{\"v\":1,\"org_id\":\"\xff\",\"id\":\"e\",\"type\":\"t\",\"customer_id\":\"c\",\"time\":\"2026-03-15T12:00:00Z\"}",
	`{"v":1.0,"org_id":"o","id":"e","type":"t","customer_id":"c","time":"2026-03-15T12:00:00Z"}`,
	`{"v":1,"org_id":"o","id":"e","type":"t","customer_id":"c","time":"2026-03-15T12:00:00\u005a"}`,
	`{"v":1,"org_id":"o","id":"e","type":"t","customer_id":"c","time":"0000-01-01T00:00:00+01:00"}`,
	`{"v":1,"org_id":"o","id":"e","type":"t","customer_id":"c","time":"2026-03-15T12:00:00Z","ingested_at":"2026-02-30T12:00:00Z"}`,
	`{"v":1,"org_id":1,"id":"","type":"t","customer_id":"c","time":1}`,
	`{"v":2}`, `{"v":"1"}`, `{"v":-0}`, `{"v":01}`, `{}`, `null`, `[]`, `""`, ``, `{"v":1,"time":""}`, `{"v":1,}`,
}

func FuzzDecodeRecordDifferential(f *testing.F) {
	for _, seed := range recordSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		rec := sameDecoding(t, value)
		if rec == nil {
			return
		}
		key, value2 := sameEncoding(t, *rec)
		if value2 != nil {
			sameDecoding(t, value2)
			if !bytes.Equal(key, schemas.RecordKey(rec.OrgID, rec.Event.CustomerID)) {
				t.Fatalf("key %q", key)
			}
		}
	})
}

func FuzzEncodeRecordDifferential(f *testing.F) {
	props := []string{``, `{}`, `null`, `{"a":1}`, `{ "a" : 1 }`, `{"a":`, `{"a":1} `, ` []`, `"\u2028<&>"`,
		"{\"s\":\"\xff\xe2\x80\xa8\"}", `{"n":-0.5e-3,"t":[true,false,null]}`, `{"a":{"b":{"c":[[[]]]}}}`, `{"a":1}{}`, `01`}
	strs := []string{"o", "", "a/b", "<&>", "\u2028\u2029", "\"\\\x00\x1f\x7f\b\f\n\r\t", "\xff\xfe", "😀", "\xed\xa0\x80"}
	for i, p := range props {
		s := strs[i%len(strs)]
		f.Add("org_"+s, s+"id", "t", "c"+s, s, []byte(p), testNow.Unix(), int64(i*123456789), i*1800-7200, testNow.Unix()+int64(i))
	}
	f.Add("o", "e", "t", "c", "", []byte(`{}`), int64(-62135596800-1), int64(0), 0, testNow.Unix())
	f.Add("o", "e", "t", "c", "", []byte(`{}`), int64(253402300799), int64(999999999), 0, int64(253402300800))
	f.Add("o", "e", "t", "c", "", []byte(`{}`), testNow.Unix(), int64(0), 0, int64(-62135596800))
	f.Fuzz(func(t *testing.T, org, id, typ, customer, source string, props []byte, sec, nsec int64, offset int, ingestedSec int64) {
		zone := time.FixedZone("z", offset%(24*3600))
		r := schemas.Record{OrgID: org, Event: schemas.Event{ID: id, Type: typ, CustomerID: customer, Source: source,
			Time: time.Unix(sec, nsec).In(zone), Properties: props}, IngestedAt: time.Unix(ingestedSec, 0).In(zone)}
		if len(props) == 0 {
			r.Event.Properties = nil
		}
		key, value := sameEncoding(t, r)
		if value == nil {
			return
		}
		if !bytes.Equal(key, schemas.RecordKey(org, customer)) {
			t.Fatalf("key %q", key)
		}
		got := sameDecoding(t, value)
		if got == nil {
			return // an empty field, or a time that is zero
		}
		// What went in comes out, strings that are not UTF-8 aside.
		for _, s := range []string{org, id, typ, customer, source} {
			if !utf8.ValidString(s) {
				return
			}
		}
		want := r.Event
		want.Time = want.Time.UTC()
		if len(props) > 0 {
			var compact bytes.Buffer
			if err := json.Compact(&compact, props); err != nil {
				t.Fatalf("EncodeRecord accepted properties %q: %v", props, err)
			}
			want.Properties = compact.Bytes()
		}
		if got.OrgID != org || !reflect.DeepEqual(got.Event, want) || !got.IngestedAt.Equal(r.IngestedAt) {
			t.Fatalf("round trip of %+v:\n got %+v", r, *got)
		}
	})
}

// sameDecoding checks that DecodeRecord and DecodeRecordJSON agree on value
// and returns the record, or nil if both refused it.
func sameDecoding(t *testing.T, value []byte) *schemas.Record {
	t.Helper()
	input := bytes.Clone(value)
	got, err := schemas.DecodeRecord(value)
	want, wantErr := schemas.DecodeRecordJSON(value)
	if !bytes.Equal(value, input) {
		t.Fatalf("DecodeRecord changed its input %q to %q", input, value)
	}
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("DecodeRecord(%q):\n error %v\n encoding/json: %v", value, err, wantErr)
	}
	if err != nil {
		if !errors.Is(err, schemas.ErrRecord) {
			t.Fatalf("DecodeRecord(%q) error %v does not wrap ErrRecord", value, err)
		}
		return nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeRecord(%q):\n got %#v\nencoding/json %#v", value, got, want)
	}
	if len(got.Event.Properties) > 0 && len(value) > 0 && &got.Event.Properties[0] == &value[bytes.Index(value, got.Event.Properties)] {
		t.Fatalf("DecodeRecord(%q): properties share the input's memory", value)
	}
	return &got
}

// sameEncoding checks that EncodeRecord and EncodeRecordJSON agree on r and
// returns the key and value, or nils if both refused it.
func sameEncoding(t *testing.T, r schemas.Record) (key, value []byte) {
	t.Helper()
	props := bytes.Clone(r.Event.Properties)
	key, value, err := schemas.EncodeRecord(r)
	wantKey, wantValue, wantErr := schemas.EncodeRecordJSON(r)
	if !bytes.Equal(props, r.Event.Properties) {
		t.Fatalf("EncodeRecord changed the properties %q to %q", props, r.Event.Properties)
	}
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("EncodeRecord(%+v):\n error %v\n encoding/json: %v", r, err, wantErr)
	}
	if err != nil {
		return nil, nil
	}
	if !bytes.Equal(key, wantKey) || !bytes.Equal(value, wantValue) {
		t.Fatalf("EncodeRecord(%+v):\n key %q value %s\n encoding/json: key %q value %s", r, key, value, wantKey, wantValue)
	}
	// Appending to the key must not write into the value.
	_ = append(key, 'x')
	if !bytes.Equal(value, wantValue) {
		t.Fatalf("appending to the key changed the value to %s", value)
	}
	return key, value
}

// FuzzSkipJSONValue holds the scanner of EncodeRecord and DecodeRecord to
// encoding/json: it accepts only JSON, all JSON nested at most
// MaxSkipDepth deep, and finds whitespace exactly where json.Compact
// removes some.
func FuzzSkipJSONValue(f *testing.F) {
	for _, seed := range append(recordSeeds, `0`, `-0.1e+5`, `1.`, `-`, `01`, `1e`, `.5`, `tru`, `nul`, `falsey`, `"\u12G4"`, `"\/\b"`,
		"\"\x1f\"", "\"\x7f\xff\"", `[1,]`, `{"a" 1}`, `{"a":1,}`, `[[[[[[]]]]]]`, `{"a":[{"b":{}}],"c":[]}`, "\t[ 1 ]\n", `} `, `]`,
		strings.Repeat("[", schemas.MaxSkipDepth)+strings.Repeat("]", schemas.MaxSkipDepth),
		strings.Repeat("[", schemas.MaxSkipDepth+1)+strings.Repeat("]", schemas.MaxSkipDepth+1)) {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		end, spaced, ok := schemas.SkipJSONValue(raw, 0)
		valid := json.Valid(raw)
		if ok && end == len(raw) {
			if !valid {
				t.Fatalf("SkipJSONValue accepted %q, which encoding/json refuses", raw)
			}
			var compact bytes.Buffer
			_ = json.Compact(&compact, raw)
			if spaced != !bytes.Equal(compact.Bytes(), raw) {
				t.Fatalf("SkipJSONValue(%q) spaced = %v, compact %q", raw, spaced, compact.Bytes())
			}
			if schemas.IsCompactJSON(raw) == spaced {
				t.Fatalf("IsCompactJSON(%q) = %v", raw, !spaced)
			}
		} else if schemas.IsCompactJSON(raw) {
			t.Fatalf("IsCompactJSON(%q) is true, SkipJSONValue = %d, %v", raw, end, ok)
		}
		if ok && end < len(raw) {
			if v := raw[:end]; !json.Valid(v) {
				t.Fatalf("SkipJSONValue found %q at the start of %q, which encoding/json refuses", v, raw)
			}
		}
		if valid && len(raw) > 0 && raw[0] > ' ' && !ok && jsonDepth(raw) <= schemas.MaxSkipDepth {
			t.Fatalf("SkipJSONValue refused %q, which encoding/json accepts", raw)
		}
	})
}

// jsonDepth is how deep valid JSON nests.
func jsonDepth(raw []byte) int {
	dec := json.NewDecoder(bytes.NewReader(raw))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF || err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

func BenchmarkEncodeRecordJSON(b *testing.B) { benchEncode(b, schemas.EncodeRecordJSON) }

func BenchmarkDecodeRecordJSON(b *testing.B) { benchDecode(b, schemas.DecodeRecordJSON) }

// TestRecordOnePass pins which records skip encoding/json: the fuzzers
// above would still pass if nothing did.
func TestRecordOnePass(t *testing.T) {
	props := []string{`{"tokens":0.1,"html":"<b>&amp;</b>","ls":"a` + "\u2028" + `b","esc":"\u003c\n\"","deep":[[[{"a":[]}]]],"t":[true,false,null,-1.5e-3]}`, `[]`, `"s"`, `0`}
	for _, p := range props {
		r := schemas.Record{OrgID: "org_1", IngestedAt: testNow, Event: schemas.Event{ID: "évt\t\"1\"", Type: "t", CustomerID: "c",
			Source: "s", Time: testNow.Add(time.Nanosecond), Properties: json.RawMessage(p)}}
		if !schemas.IsCompactJSON(r.Event.Properties) {
			t.Errorf("properties %s are compacted by encoding/json", p)
		}
		sameEncoding(t, r)
		r.Event.ID = "e"
		_, value := sameEncoding(t, r)
		if !schemas.ReadsInOnePass(value) {
			t.Errorf("DecodeRecord leaves %s to encoding/json", value)
		}
	}
	for _, value := range []string{
		` { "v" : 1 , "org_id":"o","id":"e","type":"t","customer_id":"c","time":"2026-03-15T12:00:00+05:00", "later":{"x":[1]},"properties" : { "a" : 1 } } `,
		`{"v":1}`, `{}`,
	} {
		if !schemas.ReadsInOnePass([]byte(value)) {
			t.Errorf("DecodeRecord leaves %s to encoding/json", value)
		}
	}
	for _, value := range []string{
		`{"v":1,"org_id":"o","id":"e\"","type":"t","customer_id":"c","time":"2026-03-15T12:00:00Z"}`,
		`{"v":1,"ID":"e"}`, `{"v":1,"v":1}`, `{"v":1,"properties":null}`, `{"v":2}`, `{"time":"x"}`,
	} {
		if schemas.ReadsInOnePass([]byte(value)) {
			t.Errorf("DecodeRecord reads %s without encoding/json", value)
		}
	}
}

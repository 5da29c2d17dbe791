package schemas_test

import (
	"testing"
	"time"

	"github.com/tally-oss/tally/schemas"
)

// benchEvent is a realistic ~400-byte event: CloudEvents-style fields, an
// RFC 3339 time with a fraction and nested properties with numbers,
// strings, booleans, an array and an escape.
var benchEvent = []byte(`{"id":"evt_01JQ8ZK3M4N5P6Q7R8S9T0V1W2","type":"llm.completion","customer_id":"cust_8f14e45fceea167a","time":"2026-03-15T11:58:12.345678Z","source":"api-gateway/eu-west-1","properties":{"model":"gpt-4o-mini","region":"eu-west-1","tokens":{"input":1523,"output":384,"cached":0},"cost_usd":0.00123456,"stream":true,"tags":["chat","prod"],"latency_ms":812.5,"user_agent":"tally-sdk-go/1.4.2 (linux; amd64)","path":"\/v1\/chat"}}`)

func benchRecord(b *testing.B) schemas.Record {
	ev, err := schemas.ParseEvent(benchEvent, schemas.EventRules{Now: testNow})
	if err != nil {
		b.Fatal(err)
	}
	return schemas.Record{OrgID: "org_2f8a9c", Event: ev, IngestedAt: testNow.Add(1234567 * time.Nanosecond)}
}

func BenchmarkParseEvent(b *testing.B) {
	rules := schemas.EventRules{Now: testNow}
	b.SetBytes(int64(len(benchEvent)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := schemas.ParseEvent(benchEvent, rules); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeRecord(b *testing.B) { benchEncode(b, schemas.EncodeRecord) }

func BenchmarkDecodeRecord(b *testing.B) { benchDecode(b, schemas.DecodeRecord) }

// benchEncode measures encode on benchRecord; its twin benchmarks
// (encoding_diff_test.go) run the encoding/json reference through it.
func benchEncode(b *testing.B, encode func(schemas.Record) ([]byte, []byte, error)) {
	rec := benchRecord(b)
	_, value, _ := encode(rec)
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := encode(rec); err != nil {
			b.Fatal(err)
		}
	}
}

// benchDecode measures decode on benchRecord's value as EncodeRecord
// writes it.
func benchDecode(b *testing.B, decode func([]byte) (schemas.Record, error)) {
	_, value, err := schemas.EncodeRecord(benchRecord(b))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode(value); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeProperties(b *testing.B) {
	props := benchRecord(b).Event.Properties
	b.SetBytes(int64(len(props)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := schemas.DecodeProperties(props); err != nil {
			b.Fatal(err)
		}
	}
}

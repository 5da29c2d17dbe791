package client

import (
	"encoding/json"
	"testing"
)

func TestWithID(t *testing.T) {
	id, out, err := withID(json.RawMessage(`{"id": "e1", "type": "t", "properties": {"v": 1.000000000000000000001}}`))
	if err != nil || id != "e1" || string(out) != `{"id":"e1","type":"t","properties":{"v":1.000000000000000000001}}` {
		t.Fatalf("%q %s %v", id, out, err)
	}
	// "ID" is not "id": ingest would reject the event without one, so it
	// gets one (and ingest then rejects the duplicate-looking member).
	id, out, err = withID(json.RawMessage(" {\"ID\": \"x\"}\n"))
	if err != nil || len(id) != 36 || string(out) != `{"id":"`+id+`","ID":"x"}` {
		t.Fatalf("%q %s %v", id, out, err)
	}
	id, out, err = withID(json.RawMessage(`{}`))
	if err != nil || string(out) != `{"id":"`+id+`"}` {
		t.Fatalf("%q %s %v", id, out, err)
	}
	if _, _, err := withID(json.RawMessage(`[1]`)); err == nil {
		t.Fatal("an array is not an event")
	}
}

package main

import (
	"reflect"
	"testing"

	"github.com/tally-oss/tally/client"
	"github.com/tally-oss/tally/ingest"
)

// The Go client does not import the servers' packages (a program that
// sends events should not pull in Kafka and ClickHouse drivers), so it
// restates ingest's default request limits and the shape of a rejection.
// This binary has both: the copies must stay equal.
func TestClientMirrorsIngest(t *testing.T) {
	if client.MaxEventsPerRequest != ingest.DefaultMaxEvents || client.MaxRequestBytes != ingest.DefaultMaxBodyBytes {
		t.Errorf("client limits %d events, %d bytes; ingest's defaults %d events, %d bytes",
			client.MaxEventsPerRequest, client.MaxRequestBytes, ingest.DefaultMaxEvents, ingest.DefaultMaxBodyBytes)
	}
	if got, want := jsonFields(reflect.TypeFor[client.Rejection]()), jsonFields(reflect.TypeFor[ingest.Rejection]()); !reflect.DeepEqual(got, want) {
		t.Errorf("client.Rejection fields %v, ingest.Rejection's %v", got, want)
	}
}

// jsonFields lists a struct's fields with their types and JSON tags.
func jsonFields(typ reflect.Type) []string {
	var fields []string
	for f := range typ.Fields() {
		fields = append(fields, f.Name+" "+f.Type.String()+" "+f.Tag.Get("json"))
	}
	return fields
}

package query

import (
	"errors"
	"flag"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tally-oss/tally/schemas"
)

func TestWantsCSV(t *testing.T) {
	tests := []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{"*/*"}, false},
		{[]string{"text/csv"}, true},
		{[]string{"text/csv; charset=utf-8"}, true},
		{[]string{"application/json", "text/csv"}, true},
		{[]string{"text/csv;q=0.5, application/json"}, false},
		{[]string{"text/csv, application/json;q=0.9"}, true},
		{[]string{"text/csv;q=0"}, false},
		{[]string{"text/html"}, false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		for _, a := range tt.accept {
			r.Header.Add("Accept", a)
		}
		if got := wantsCSV(r); got != tt.want {
			t.Errorf("Accept %q: CSV %v, want %v", tt.accept, got, tt.want)
		}
	}
}

// TestFieldErrors: details list every *schemas.FieldError, however deeply
// errors.Join and wrapping nest them.
func TestFieldErrors(t *testing.T) {
	_, parseErr := schemas.ParseMeter([]byte(`{"key": "Bad!", "event_type": "", "aggregation": "COUNT"}`))
	err := errors.Join(
		parseErr,
		fmt.Errorf("wrapped: %w", &schemas.FieldError{Field: "group_by.x", Message: "bad"}),
		errors.New("plain"),
	)
	var got []string
	for _, d := range fieldErrors(err) {
		got = append(got, d.Field)
	}
	if want := "key event_type group_by.x meter"; strings.Join(got, " ") != want {
		t.Errorf("fields %v, want %s", got, want)
	}
}

func TestConfig(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if c.ListenAddr != "127.0.0.1:8081" || c.MaxRows != DefaultMaxRows || c.Timeout != DefaultTimeout {
		t.Errorf("defaults %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	bad := Config{ListenAddr: "", MaxRows: -1, Timeout: time.Hour}
	err := bad.Validate()
	for _, want := range []string{"query.listen-addr", "query.max-rows", "query.timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate does not report %s: %v", want, err)
		}
	}
}

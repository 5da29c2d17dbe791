package measure

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseRequest(t *testing.T) {
	const (
		start = `"2026-02-01T05:00:00Z"`
		end   = `"2026-03-01T05:00:00Z"`
	)
	body := func(id, period string) string {
		return `{"product_metric_pricing_id": ` + id + `, "period": ` + period + `}`
	}
	tests := []struct {
		name       string
		body       string
		wantFields []string // the fields the errors name, in order; none: valid
	}{
		{"valid", body(`"ch_1"`, `{"start_date": `+start+`, "end_date": `+end+`}`), nil},
		{"offsets and fractions", body(`"ch_1"`, `{"start_date": "2026-02-01T00:00:00.5-05:00", "end_date": "2026-03-01T00:00:00-05:00"}`), nil},
		{"equal dates, as in Measure's example", body(`"ch_1"`, `{"start_date": `+start+`, "end_date": `+start+`}`), nil},
		{"exactly 366 days", body(`"ch_1"`, `{"start_date": "2028-01-01T00:00:00Z", "end_date": "2029-01-01T00:00:00Z"}`), nil},
		{"missing charge", `{"period": {"start_date": ` + start + `, "end_date": ` + end + `}}`, []string{"product_metric_pricing_id"}},
		{"empty charge", body(`" "`, `{"start_date": `+start+`, "end_date": `+end+`}`), []string{"product_metric_pricing_id"}},
		{"missing period", `{"product_metric_pricing_id": "ch_1"}`, []string{"period"}},
		{"null period", body(`"ch_1"`, `null`), []string{"period"}},
		{"missing everything", `{}`, []string{"product_metric_pricing_id", "period"}},
		{"missing start", body(`"ch_1"`, `{"end_date": `+end+`}`), []string{"period.start_date"}},
		{"missing end", body(`"ch_1"`, `{"start_date": `+start+`}`), []string{"period.end_date"}},
		{"empty period", body(`"ch_1"`, `{}`), []string{"period.start_date", "period.end_date"}},
		{"missing charge and dates", `{"period": {}}`, []string{"product_metric_pricing_id", "period.start_date", "period.end_date"}},
		{"end before start", body(`"ch_1"`, `{"start_date": `+end+`, "end_date": `+start+`}`), []string{"period.end_date"}},
		{"more than a year", body(`"ch_1"`, `{"start_date": "2026-01-01T00:00:00Z", "end_date": "2027-01-02T00:00:01Z"}`), []string{"period"}},
		{"not RFC 3339", body(`"ch_1"`, `{"start_date": "2026-02-01", "end_date": `+end+`}`), []string{"period.start_date"}},
		{"unknown field", `{"product_metric_pricing_id": "ch_1", "period": {"start_date": ` + start + `, "end_date": ` + end + `}, "customer": "x"}`, []string{"customer"}},
		{"unknown field in period", body(`"ch_1"`, `{"start_date": `+start+`, "end_date": `+end+`, "timezone": "UTC"}`), []string{"timezone"}},
		{"charge of the wrong type", body(`17`, `{"start_date": `+start+`, "end_date": `+end+`}`), []string{"product_metric_pricing_id"}},
		{"date of the wrong type", body(`"ch_1"`, `{"start_date": 1700000000, "end_date": `+end+`}`), []string{"period.start_date"}},
		{"period of the wrong type", body(`"ch_1"`, `"last month"`), []string{"period"}},
		{"array", `[]`, []string{"body"}},
		{"empty body", ``, []string{"body"}},
		{"not JSON", `product_metric_pricing_id=ch_1`, []string{"body"}},
		{"two objects", body(`"ch_1"`, `{"start_date": `+start+`, "end_date": `+end+`}`) + `{}`, []string{"body"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, errs := parseRequest([]byte(tt.body))
			var fields []string
			for _, e := range errs {
				fields = append(fields, e.Field)
				if e.Message == "" {
					t.Errorf("%s: no message", e.Field)
				}
			}
			if !slices.Equal(fields, tt.wantFields) {
				t.Fatalf("fields %q, want %q (errors %v)", fields, tt.wantFields, errs)
			}
			if tt.wantFields == nil && (req.ChargeID != "ch_1" || req.To.Before(req.From) || req.From.IsZero()) {
				t.Errorf("parsed %+v", req)
			}
		})
	}
}

func TestParseRequestKeepsTheInstants(t *testing.T) {
	req, errs := parseRequest([]byte(`{"product_metric_pricing_id": "ch_1",
		"period": {"start_date": "2026-03-08T00:00:00-05:00", "end_date": "2026-03-09T00:00:00-04:00"}}`))
	if errs != nil {
		t.Fatal(errs)
	}
	if want := time.Date(2026, 3, 8, 5, 0, 0, 0, time.UTC); !req.From.Equal(want) {
		t.Errorf("from %v, want %v", req.From, want)
	}
	if got := req.To.Sub(req.From); got != 23*time.Hour {
		t.Errorf("range %v, want 23h (the day DST starts in New York)", got)
	}
}

func TestParseRequestMessagesSayWhatToSend(t *testing.T) {
	_, errs := parseRequest([]byte(`{}`))
	for _, e := range errs {
		if !strings.Contains(e.Message, "required") {
			t.Errorf("%s: %q does not say the field is required", e.Field, e.Message)
		}
	}
}

package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestHTTPMetricsCountAClientGoneAs499: a request whose client went away
// before the answer is counted under code 499 (nginx's "client closed
// request"), whatever the handler wrote for nobody. Counted as the 503 the
// handlers answer then, every closed dashboard tab would feed the 5xx
// alerts (TallyQueryHighErrorRate) with failures that are not the
// server's. An answered request keeps its code.
func TestHTTPMetricsCountAClientGoneAs499(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewHTTPMetrics(reg, "test")
	handled := make(chan struct{}, 2)
	srv := httptest.NewServer(m.Wrap("/r", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { handled <- struct{}{} }()
		if r.URL.Query().Has("wait") {
			<-r.Context().Done() // the client goes away
		}
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	})))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"?wait", nil)
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the canceled request got an answer")
	}
	<-handled
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	<-handled

	want := map[string]float64{"499": 1, "503": 1}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := requestsByCode(t, reg)
		if len(got) == len(want) && got["499"] == want["499"] && got["503"] == want["503"] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("requests by code %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func requestsByCode(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "tally_test_http_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" {
					got[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return got
}

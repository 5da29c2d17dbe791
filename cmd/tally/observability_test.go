package main

// The alert rules and the dashboard against the code: every metric a rule
// or a panel uses is exported by a component after a short real run (no
// panel on a metric that does not exist). observability_rules_test.go
// parses the rules and checks the runbook.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// promSeries are the series Prometheus itself adds for every scrape
// target: no component exports them, and a selector of them must name a
// job prometheus.yml scrapes.
var promSeries = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added"}

// alertSeries are the series Prometheus adds for the alerts it evaluates;
// a selector of them must name an alert of the rules file.
var alertSeries = []string{"ALERTS", "ALERTS_FOR_STATE"}

// usedMetric is a vector selector of a rule or a panel.
type usedMetric struct {
	where    string
	name     string
	matchers []*labels.Matcher
}

// Every metric the alert and recording rules and the dashboard's panels and
// variables use is exported by ingest, the aggregator or query after a short
// run (an event metered, one dead-lettered, one rejected, a few queries), or
// is a recording rule's output or a series Prometheus adds itself.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	var used []usedMetric
	recorded := map[string]bool{}
	var alertNames []string
	for _, g := range parseRules(t).Groups {
		for _, r := range g.Rules {
			name := r.Alert
			if r.Alert != "" {
				alertNames = append(alertNames, r.Alert)
			}
			if r.Record != "" {
				name = r.Record
				recorded[r.Record] = true
			}
			used = append(used, exprMetrics(t, rulesFile+" "+name, r.Expr)...)
		}
	}
	used = append(used, dashboardMetrics(t, tallyDashboard)...)

	p := startPipeline(t)
	p.createMeter(acmeKey, `{"key": "tokens", "event_type": "call", "aggregation": "SUM", "value_property": "$.tokens", "group_by": {"model": "$.model"}}`)
	p.postEvents(acmeKey,
		ev("m1", "call", "c1", "2026-03-02T10:00:00Z", map[string]any{"tokens": 5, "model": "a"}),
		ev("m2", "call", "c1", "2026-03-02T11:00:00Z", map[string]any{"tokens": "five", "model": "a"}), // dead-lettered
	)
	if code, body := p.do("POST", p.ingestURL+"/api/v1/events", acmeKey, "application/json", []byte(`[{"id": "bad", "customer_id": "c1"}]`)); code != http.StatusBadRequest && code != http.StatusAccepted {
		t.Fatalf("post an invalid event: %d %s", code, body)
	}
	p.waitUsage(acmeKey, "tokens", yearParams("group_by", "model"), "model=a => 5")
	waitFor(t, func() bool {
		return p.count("SELECT count() FROM dead_letters FINAL WHERE event_id = 'm2'") == 1
	}, func() string { return "event m2 was not dead-lettered" })
	p.mustAPI(acmeKey, "GET", "/api/v1/meters", "", http.StatusOK)

	exported := map[string]*dto.MetricFamily{}
	for component, base := range map[string]string{"ingest": p.ingestURL, "aggregator": p.aggURL, "query": p.queryURL} {
		for name, f := range scrapeMetrics(t, component, base+"/metrics") {
			exported[name] = f
		}
	}
	// The metrics the runbook names exist too: exported now, or defined
	// by the code for an event this run does not provoke (a partition's
	// records deleted before they were metered, a failed ClickHouse call
	// of query). The rules and panels are held to what is exported.
	runbook := string(readRepoFile(t, runbookFile, runbookFile))
	defined := metricNamesInCode(t)
	for _, name := range regexp.MustCompile(`tally_[a-z0-9_]+`).FindAllString(runbook, -1) {
		if !defined[name] {
			used = append(used, usedMetric{where: runbookFile, name: name})
		}
	}
	for _, name := range regexp.MustCompile(`tally:[a-z0-9_:]+`).FindAllString(runbook, -1) {
		if !recorded[name] {
			t.Errorf("%s names %s, which is no recording rule of %s", runbookFile, name, rulesFile)
		}
	}
	jobs := scrapeJobs(t)
	for _, u := range used {
		switch {
		case recorded[u.name]:
		case slices.Contains(alertSeries, u.name):
			for _, m := range u.matchers {
				if m.Name == "alertname" && !slices.ContainsFunc(alertNames, m.Matches) {
					t.Errorf("%s: %s matches no alert of %s", u.where, m, rulesFile)
				}
			}
		case slices.Contains(promSeries, u.name):
			for _, m := range u.matchers {
				if m.Name == "job" && !slices.ContainsFunc(jobs, m.Matches) {
					t.Errorf("%s: %s matches no job of %s (%v)", u.where, m, prometheusFile, jobs)
				}
			}
		default:
			f, ok := exported[u.name]
			if !ok {
				t.Errorf("%s uses %s, which no component exports", u.where, u.name)
				continue
			}
			checkLabelsExist(t, u, f)
		}
	}
}

// exprMetrics parses a PromQL expression and returns its vector selectors.
func exprMetrics(t *testing.T, where, expr string) []usedMetric {
	t.Helper()
	e, err := promQL.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q: %v", where, expr, err)
		return nil
	}
	var out []usedMetric
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
			if name == "" {
				t.Errorf("%s: %q selects series without a metric name", where, expr)
			}
			out = append(out, usedMetric{where: where, name: name, matchers: vs.LabelMatchers})
		}
		return nil
	})
	return out
}

var (
	// grafanaInterval are Grafana's interval variables, which stand for a
	// duration in PromQL.
	grafanaInterval = regexp.MustCompile(`\$\{?__(rate_interval|interval|range)(_ms|_s)?\}?`)
	grafanaVariable = regexp.MustCompile(`\$\{?\w+(:\w+)?\}?`)
	labelValuesCall = regexp.MustCompile(`^\s*label_values\(\s*(.+),\s*\w+\s*\)\s*$`)
	queryResultCall = regexp.MustCompile(`^\s*query_result\((.+)\)\s*$`)
)

// dashboardMetrics returns the vector selectors of every panel target and
// query variable of a dashboard, with Grafana's variables replaced by
// values PromQL accepts.
func dashboardMetrics(t *testing.T, file string) []usedMetric {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(readRepoFile(t, file, file), &d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	promql := func(expr string) string {
		expr = grafanaInterval.ReplaceAllString(expr, "5m")
		return grafanaVariable.ReplaceAllString(expr, ".*")
	}
	var out []usedMetric
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q := v.queryString()
		if m := labelValuesCall.FindStringSubmatch(q); m != nil {
			q = m[1]
		} else if m := queryResultCall.FindStringSubmatch(q); m != nil {
			q = m[1]
		}
		out = append(out, exprMetrics(t, fmt.Sprintf("%s variable %s", file, v.Name), promql(q))...)
	}
	targets := 0
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			targets++
			out = append(out, exprMetrics(t, fmt.Sprintf("%s panel %q target %s", file, p.Title, tg.RefID), promql(tg.Expr))...)
		}
	}
	if targets == 0 {
		t.Fatalf("%s has no panel targets", file)
	}
	return out
}

// scrapeMetrics GETs a component's /metrics and returns its families by
// every name a query can use: a histogram's _bucket, _sum and _count too.
func scrapeMetrics(t *testing.T, component, u string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("%s: %v", component, err)
	}
	defer resp.Body.Close()
	tp := expfmt.NewTextParser(model.LegacyValidation)
	families, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", component, u, err)
	}
	out := map[string]*dto.MetricFamily{}
	for name, f := range families {
		out[name] = f
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = f, f, f
		case dto.MetricType_SUMMARY:
			out[name+"_sum"], out[name+"_count"] = f, f
		}
	}
	return out
}

// checkLabelsExist: a matcher on a label the metric does not have selects
// nothing (or everything), which is a typo, not a query.
func checkLabelsExist(t *testing.T, u usedMetric, f *dto.MetricFamily) {
	have := map[string]bool{labels.MetricName: true, "job": true, "instance": true}
	if f.GetType() == dto.MetricType_HISTOGRAM {
		have["le"] = true
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			have[l.GetName()] = true
		}
	}
	for _, m := range u.matchers {
		if !have[m.Name] {
			t.Errorf("%s: %s has no label %q", u.where, u.name, m.Name)
		}
	}
}

// scrapeJobs are the job names of deploy/prometheus/prometheus.yml.
func scrapeJobs(t *testing.T) []string {
	var cfg struct {
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readRepoFile(t, prometheusFile, prometheusFile), &cfg); err != nil {
		t.Fatalf("%s: %v", prometheusFile, err)
	}
	var jobs []string
	for _, sc := range cfg.ScrapeConfigs {
		jobs = append(jobs, sc.JobName)
	}
	return jobs
}

// metricNamesInCode are the metric names the packages' code defines as
// string literals (Name: "tally_..."), test files excepted.
func metricNamesInCode(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	literal := regexp.MustCompile(`Name:\s+"(tally_[a-z0-9_]+)"`)
	err := filepath.WalkDir(repoRoot, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "data" || strings.HasPrefix(d.Name(), ".")) && path != repoRoot {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range literal.FindAllStringSubmatch(string(src), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

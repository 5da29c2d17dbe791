package main

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tally-oss/tally/ingest"
	"github.com/tally-oss/tally/internal/apispec"
	"github.com/tally-oss/tally/internal/httpapi"
	"github.com/tally-oss/tally/query"
)

// schemas/openapi.yaml describes exactly the routes the servers register.
// Every pattern ingest and query register with a method ("GET
// /api/v1/meters") is an operation of the description, and every
// operation is served: a request for it, on the component that serves its
// path (ingest.PublicPaths on ingest, the rest on query, the operations
// routes on both), reaches the handler of that very pattern. Go's
// {wildcards} are OpenAPI's {parameters}, names included. A pattern
// without a method only answers 405 for the methods its path does not
// serve (and "/api/" answers 404 for unknown paths): it needs no
// operation, but its path must be described.
func TestOpenAPIRoutes(t *testing.T) {
	spec, err := apispec.Load()
	if err != nil {
		t.Fatal(err)
	}
	in, q := routeServices(t)
	described := map[string]bool{}
	paths := map[string]bool{}
	for _, op := range spec.Operations() {
		described[op.Method+" "+op.Path] = true
		paths[op.Path] = true
	}
	registered := 0
	for _, pattern := range append(in.Patterns(), q.Patterns()...) {
		method, path, ok := strings.Cut(pattern, " ")
		if !ok {
			if pattern != "/api/" && !paths[pattern] {
				t.Errorf("path %s is registered but not described", pattern)
			}
			continue
		}
		registered++
		if !described[method+" "+path] {
			t.Errorf("route %s is registered but not described in schemas/openapi.yaml", pattern)
		}
	}

	muxes := map[string]*http.ServeMux{"ingest": in.Handler().(*http.ServeMux), "query": q.Handler().(*http.ServeMux)}
	wildcard := regexp.MustCompile(`\{[^}]+\}`)
	for _, op := range spec.Operations() {
		components := []string{"query"}
		switch {
		case slices.Contains(operationTags(op), "operations"):
			components = []string{"ingest", "query"}
		case slices.Contains(ingest.PublicPaths, op.Path):
			components = []string{"ingest"}
		}
		target := wildcard.ReplaceAllString(op.Path, "x1")
		for _, c := range components {
			_, pattern := muxes[c].Handler(httptest.NewRequest(op.Method, target, nil))
			if want := op.Method + " " + op.Path; pattern != want {
				t.Errorf("%s is described but %s serves %s %s with pattern %q", want, c, op.Method, target, pattern)
			}
		}
	}
	if registered < 25 {
		t.Errorf("only %d routes with a method registered; are the services built?", registered)
	}
}

func operationTags(op apispec.Operation) []string {
	var tags []string
	list, _ := op.Op["tags"].([]any)
	for _, tag := range list {
		tags = append(tags, tag.(string))
	}
	return tags
}

// routeServices builds ingest and query as tally all does, without
// starting them: building connects to nothing.
func routeServices(t *testing.T) (*ingest.Service, *query.Service) {
	t.Helper()
	var flags allFlags
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	flags.register(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	keys := &httpapi.Keys{}
	if err := keys.AddSpec("acme:" + acmeKey); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	q, err := newQuery(flags.query, conn, keys, logger)
	if err != nil {
		t.Fatal(err)
	}
	in, err := newIngest(flags.ingest, &flags.kafka, keys, conn, logger)
	if err != nil {
		t.Fatal(err)
	}
	return in, q
}

// liveStep is one request of TestOpenAPILive: its operation in the
// description, the URL path it is sent to, its body (a request example of
// the description, or one written here) and the status it must get.
type liveStep struct {
	op          string // "POST /api/v1/meters", as described
	target      string // path and query sent
	example     string // name of a request example of op (or of exampleOf)
	exampleOf   string // the operation whose example it is, when not op's
	body        string // a body written here, when no example
	invalid     bool   // the body is invalid for the described request schema
	contentType string // default application/json when there is a body
	header      []string
	gzip        bool   // send the body gzip-compressed
	base        string // "ingest" or "query" for the operations routes; default the :8000 base URL
	want        int
}

// The description is honest about the running pipeline: each request
// example is sent to a real pipeline (ingest, aggregator and query on the
// in-process Kafka broker and a private ClickHouse, behind the :8000
// gateway), and every answer, successes and errors, validates against
// the schema the description gives its status and content type. Every
// operation is exercised with a 2xx at least once.
func TestOpenAPILive(t *testing.T) {
	spec, err := apispec.Load()
	if err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t)
	const org = "acme"
	partlyInvalid := `[{"id": "evt-x1", "type": "llm.completion", "customer_id": "acme", "properties": {"model": "gpt-4o", "status": "ok", "usage": {"tokens": 1}}},
		{"id": "evt-x2", "type": "llm.completion", "properties": {}}]`
	// Accepted, and not metered: its tokens are not a number.
	deadLetter := `{"id": "evt-dl", "type": "llm.completion", "customer_id": "acme", "properties": {"model": "gpt-4o", "status": "ok", "usage": {"tokens": "many"}}}`
	steps := []liveStep{
		{op: "POST /api/v1/meters", example: "tokens", want: 201},
		{op: "POST /api/v1/meters", example: "calls", want: 201},
		{op: "POST /api/v1/meters", example: "api", want: 201},
		{op: "POST /api/v1/meters", example: "invalid", invalid: true, want: 400},
		{op: "POST /api/v1/meters", example: "tokens", want: 409},
		{op: "POST /api/v1/meters", body: `{}`, contentType: "text/plain", want: 415},
		{op: "GET /api/v1/meters", want: 200},
		{op: "GET /api/v1/meters", header: []string{"Authorization", "Bearer nope-nope-nope-nope"}, want: 401},
		{op: "GET /api/v1/meters/{key}", target: "/api/v1/meters/tokens", want: 200},
		{op: "GET /api/v1/meters/{key}", target: "/api/v1/meters/nope", want: 404},

		{op: "POST /api/v1/customers", example: "acme", want: 201},
		{op: "POST /api/v1/customers", example: "acme", want: 200},
		{op: "POST /api/v1/customers", body: `{"name": "no id"}`, invalid: true, want: 400},
		{op: "GET /api/v1/customers", target: "/api/v1/customers?limit=10", want: 200},
		{op: "GET /api/v1/customers", target: "/api/v1/customers?limit=0", want: 400},
		{op: "GET /api/v1/customers/{external_id}", target: "/api/v1/customers/acme", want: 200},
		{op: "GET /api/v1/customers/{external_id}", target: "/api/v1/customers/nobody", want: 404},
		{op: "POST /api/v1/plans", example: "pro", want: 201},
		{op: "POST /api/v1/plans", example: "starter", want: 201},
		{op: "GET /api/v1/plans", want: 200},
		{op: "GET /api/v1/plans/{code}", target: "/api/v1/plans/pro", want: 200},
		{op: "GET /api/v1/plans/{code}", target: "/api/v1/plans/nope", want: 404},
		{op: "GET /api/v1/plans", target: "/api/v1/plans?cursor=!", want: 400},
		{op: "PUT /api/v1/plans/{code}", target: "/api/v1/plans/pro", example: "pro", exampleOf: "POST /api/v1/plans", want: 200},
		{op: "POST /api/v1/subscriptions", body: `{"external_id": "sub_x", "external_customer_id": "acme", "plan_code": "nope"}`, want: 400},
		{op: "POST /api/v1/subscriptions", example: "acme", want: 201},
		{op: "PUT /api/v1/subscriptions/{external_id}", target: "/api/v1/subscriptions/nope", example: "end", want: 404},
		{op: "GET /api/v1/subscriptions", target: "/api/v1/subscriptions?external_customer_id=acme&status=active", want: 200},
		{op: "GET /api/v1/subscriptions/{external_id}", target: "/api/v1/subscriptions/sub_acme", want: 200},
		{op: "PUT /api/v1/subscriptions/{external_id}", target: "/api/v1/subscriptions/sub_acme", example: "end", want: 200},

		{op: "POST /api/v1/events", example: "array", want: 202},
		{op: "POST /api/v1/events", example: "single", want: 202},
		{op: "POST /api/v1/events", example: "ndjson", contentType: "application/x-ndjson", want: 202},
		{op: "POST /api/v1/events", example: "ndjson", contentType: "application/x-ndjson", gzip: true, want: 202},
		{op: "POST /api/v1/events", example: "array", gzip: true, want: 202},
		{op: "POST /api/v1/events", example: "array", header: []string{"Authorization", ""}, want: 401},
		{op: "POST /api/v1/events", example: "cloudEvent", contentType: "application/cloudevents+json", want: 202},
		{op: "POST /api/v1/events", example: "lagoEvent", want: 200},
		{op: "POST /api/v1/events", body: partlyInvalid, invalid: true, want: 202},
		{op: "POST /api/v1/events", body: deadLetter, want: 202},
		{op: "POST /api/v1/events", body: `[{"id": "evt-x3"}]`, invalid: true, want: 400},
		{op: "POST /api/v1/events", body: `[{"id": `, want: 400},
		{op: "POST /api/v1/events", body: `{"event": {"code": "llm.completion"}}`, invalid: true, want: 422},
		{op: "POST /api/v1/events", body: `a,b`, contentType: "text/csv", want: 415},
		{op: "POST /api/v1/events/batch", example: "batch", want: 200},
		{op: "POST /api/v1/events/batch", body: `{"events": []}`, invalid: true, want: 422},
		{op: "POST /api/v1/events/batch", body: `{"events": `, want: 400},
		{op: "POST /api/v1/integration/organization/{org_id}/usage", target: "/api/v1/integration/organization/" + org + "/usage",
			example: "record", header: []string{"Authorization", acmeKey}, want: 202},
		{op: "POST /api/v1/integration/organization/{org_id}/usage", target: "/api/v1/integration/organization/globex/usage",
			example: "record", want: 403},
	}
	usageSteps := []liveStep{
		{op: "GET /api/v1/meters/{key}/query", target: "/api/v1/meters/tokens/query?group_by=customer_id&group_by=model", want: 200},
		{op: "GET /api/v1/meters/{key}/query", target: "/api/v1/meters/tokens/query?customer_id=acme&window_size=DAY&window_time_zone=America/New_York",
			header: []string{"Accept", "text/csv"}, want: 200},
		{op: "GET /api/v1/meters/{key}/query", target: "/api/v1/meters/tokens/query?window_size=WEEK", want: 400},
		{op: "GET /api/v1/meters/{key}/query", target: "/api/v1/meters/nope/query", want: 404},
		{op: "GET /api/v1/subscriptions/{external_id}/usage", target: "/api/v1/subscriptions/sub_acme/usage", want: 200},
		{op: "GET /api/v1/subscriptions/{external_id}/usage", target: "/api/v1/subscriptions/sub_acme/usage?period=next", want: 400},
		{op: "GET /api/v1/customers/{external_customer_id}/current_usage", target: "/api/v1/customers/acme/current_usage?external_subscription_id=sub_acme", want: 200},
		{op: "GET /api/v1/customers/{external_customer_id}/current_usage", target: "/api/v1/customers/acme/current_usage", want: 422},
		{op: "GET /api/v1/customers/{external_customer_id}/current_usage", target: "/api/v1/customers/nobody/current_usage?external_subscription_id=sub_acme", want: 404},
		{op: "GET /api/v1/integration/organization/{org_id}/customers", target: "/api/v1/integration/organization/" + org + "/customers",
			header: []string{"Authorization", acmeKey}, want: 200},
		{op: "GET /api/v1/integration/organization/{org_id}/customers", target: "/api/v1/integration/organization/globex/customers", want: 403},
		{op: "POST /api/v1/companies/{company_id}/subscriptions/{id}/usage", target: "/api/v1/companies/cmp_" + org + "/subscriptions/sub_acme/usage",
			example: "month", want: 200},
		{op: "POST /api/v1/companies/{company_id}/subscriptions/{id}/usage", target: "/api/v1/companies/cmp_" + org + "/subscriptions/nope/usage",
			example: "month", want: 404},
		{op: "POST /api/v1/companies/{company_id}/subscriptions/{id}/usage", target: "/api/v1/companies/cmp_" + org + "/subscriptions/sub_acme/usage",
			body: `{"period": {}}`, invalid: true, want: 400},
		{op: "GET /api/v1/dead_letters", target: "/api/v1/dead_letters?limit=10", want: 200},
		{op: "GET /api/v1/status", want: 200},
		{op: "GET /api/v1/status", target: "/api/v1/status?org=globex", want: 400},
		{op: "GET /api/v1/dead_letters", target: "/api/v1/dead_letters?limit=0", want: 400},

		{op: "DELETE /api/v1/meters/{key}", target: "/api/v1/meters/calls", want: 204},
		{op: "DELETE /api/v1/meters/{key}", target: "/api/v1/meters/tokens", want: 409},
		{op: "DELETE /api/v1/subscriptions/{external_id}", target: "/api/v1/subscriptions/sub_acme", want: 200},
		{op: "GET /api/v1/customers/{external_customer_id}/current_usage", target: "/api/v1/customers/acme/current_usage?external_subscription_id=sub_acme", want: 405},
		{op: "DELETE /api/v1/plans/{code}", target: "/api/v1/plans/pro", want: 409},
		{op: "DELETE /api/v1/plans/{code}", target: "/api/v1/plans/starter", want: 204},
		{op: "DELETE /api/v1/customers/{external_id}", target: "/api/v1/customers/acme", want: 204},
		{op: "DELETE /api/v1/customers/{external_id}", target: "/api/v1/customers/acme", want: 404},
	}
	for _, base := range []string{"ingest", "query"} {
		usageSteps = append(usageSteps,
			liveStep{op: "GET /healthz", base: base, want: 200},
			liveStep{op: "GET /readyz", base: base, want: 200},
			liveStep{op: "GET /metrics", base: base, want: 200})
	}

	succeeded := map[string]bool{}
	run := func(steps []liveStep) {
		for _, s := range steps {
			if code := p.liveStep(spec, s); code >= 200 && code < 300 {
				succeeded[s.op] = true
			}
		}
	}
	run(steps)
	// The usage routes answer what the aggregator has stored: wait for
	// the events above, so that their rows are in the answers checked.
	waitFor(t, func() bool {
		return len(p.usage(acmeKey, "tokens", params("group_by", "customer_id"))) > 0 &&
			p.count("SELECT count() FROM dead_letters WHERE org_id = ? AND event_id = 'evt-dl'", org) > 0
	}, func() string { return "the events sent never reached the tokens meter and the dead letters" })
	run(usageSteps)

	for _, op := range spec.Operations() {
		if name := op.Method + " " + op.Path; !succeeded[name] {
			t.Errorf("%s was not exercised with a 2xx answer", name)
		}
	}
}

// liveStep sends s and validates the answer against the description; it
// returns the status.
func (p *pipeline) liveStep(spec *apispec.Spec, s liveStep) int {
	t := p.t
	t.Helper()
	method, path, _ := strings.Cut(s.op, " ")
	target := s.target
	if target == "" {
		target = path
	}
	name := fmt.Sprintf("%s %s", method, target)
	var body []byte
	contentType := s.contentType
	switch {
	case s.example != "":
		exMethod, exPath := method, path
		if s.exampleOf != "" {
			exMethod, exPath, _ = strings.Cut(s.exampleOf, " ")
		}
		media := contentType
		if media == "" {
			media = "application/json"
		}
		value, err := spec.Example(exPath, exMethod, media, s.example)
		if err != nil {
			t.Fatal(err)
		}
		if text, ok := value.(string); ok && media != "application/json" {
			body = []byte(text)
		} else if body, err = json.Marshal(value); err != nil {
			t.Fatal(err)
		}
		name += " (example " + s.example + ")"
	case s.body != "":
		body = []byte(s.body)
	}
	if body != nil && contentType == "" {
		contentType = "application/json"
	}
	// What the description calls a valid body is one the route takes,
	// unless a step says why not; bodies the steps mark invalid are
	// invalid for the description too.
	if mt, _, _ := mime.ParseMediaType(contentType); body != nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		sch, err := spec.RequestSchema(path, method, mt)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		err = apispec.ValidateJSON(sch, body)
		switch {
		case s.invalid && err == nil:
			t.Errorf("%s: the body is marked invalid but validates against the described request schema", name)
		case !s.invalid && err != nil && s.want < 300:
			t.Errorf("%s: the body does not validate against the described request schema:\n%v", name, err)
		}
	}
	if s.gzip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(body); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		body = buf.Bytes()
		name += " (gzip)"
	}
	base := p.apiURL
	switch s.base {
	case "ingest":
		base = p.ingestURL
	case "query":
		base = p.queryURL
	}
	header := s.header
	key := acmeKey
	if slices.Contains(header, "Authorization") {
		key = "" // the step's own Authorization header
	}
	req := newRequest(t, method, base+target, key, contentType, body, header...)
	if s.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != s.want {
		t.Errorf("%s: %d %s, want %d", name, resp.StatusCode, respBody, s.want)
	} else {
		checkAnswer(t, spec, name, method, path, resp, respBody)
	}
	return resp.StatusCode
}

// checkAnswer validates the answer to method path against the
// description of its status and content type.
func checkAnswer(t *testing.T, spec *apispec.Spec, name, method, path string, resp *http.Response, respBody []byte) {
	t.Helper()
	if len(respBody) == 0 {
		if _, err := spec.Lookup(apispec.Pointer("paths", path, strings.ToLower(method), "responses", fmt.Sprint(resp.StatusCode), "content")); err == nil {
			t.Errorf("%s: %d with no body, but the description gives it content", name, resp.StatusCode)
		}
		return
	}
	mediaType, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		t.Errorf("%s: Content-Type %q: %v", name, resp.Header.Get("Content-Type"), err)
		return
	}
	sch, err := spec.ResponseSchema(path, method, resp.StatusCode, mediaType)
	if err != nil {
		t.Errorf("%s: the answer %d %s is not described: %v", name, resp.StatusCode, respBody, err)
		return
	}
	if mediaType == "text/csv" {
		// The columns the description names: window_start, window_end,
		// the group_by keys, value.
		records, err := csv.NewReader(bytes.NewReader(respBody)).ReadAll()
		if err != nil || len(records) < 2 || len(records[0]) < 3 || records[0][0] != "window_start" ||
			records[0][1] != "window_end" || records[0][len(records[0])-1] != "value" {
			t.Errorf("%s: the CSV is not as described (%v):\n%s", name, err, respBody)
		}
		return
	}
	if mediaType != "application/json" {
		return // metrics; its schema is a string
	}
	if err := apispec.ValidateJSON(sch, respBody); err != nil {
		t.Errorf("%s: the answer %d does not match the description:\n%s\n%v", name, resp.StatusCode, respBody, err)
	}
}

// The answers the README shows are answers the description allows: each
// JSON block of the README that holds every member a described answer
// requires validates against that answer's schema.
func TestREADMEAnswersMatchOpenAPI(t *testing.T) {
	spec, err := apispec.Load()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	answers := []string{"UsageResponse", "SubscriptionUsage", "LagoCurrentUsage", "IngestResponse", "Meter", "Customer", "Plan", "Subscription"}
	checked := 0
	for _, block := range regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		var members map[string]any
		if json.Unmarshal([]byte(block[1]), &members) != nil {
			continue // an excerpt or an annotated shape, not an answer
		}
		for _, name := range answers {
			pointer := "/components/schemas/" + name
			schema, err := spec.Lookup(pointer)
			if err != nil {
				t.Fatal(err)
			}
			required, _ := schema.(map[string]any)["required"].([]any)
			if len(required) == 0 || slices.ContainsFunc(required, func(r any) bool { _, ok := members[r.(string)]; return !ok }) {
				continue
			}
			checked++
			sch, err := spec.Schema(pointer)
			if err != nil {
				t.Fatal(err)
			}
			if err := apispec.ValidateJSON(sch, []byte(block[1])); err != nil {
				t.Errorf("the README's answer does not match %s:\n%s\n%v", name, block[1], err)
			}
		}
	}
	if checked < 3 {
		t.Errorf("only %d README answers checked; the usage, subscription usage and Lago answers were expected", checked)
	}
	t.Logf("%d README answers match the description", checked)
}

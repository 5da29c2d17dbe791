package schemas_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tally-oss/tally/internal/apispec"
)

func loadSpec(t *testing.T) *apispec.Spec {
	t.Helper()
	spec, err := apispec.Load()
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// The description is a valid OpenAPI 3.1 document: it validates against
// the OpenAPI Initiative's schema of 3.1 documents (testdata, with its
// licence), and each of its schemas is valid JSON Schema 2020-12 (the
// compiler validates a schema against the draft's meta-schema).
func TestOpenAPIDocumentIsValid(t *testing.T) {
	spec := loadSpec(t)
	raw, err := os.ReadFile("testdata/openapi-3.1-schema.yaml")
	if err != nil {
		t.Fatal(err)
	}
	meta, err := apispec.YAMLToJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	id := meta.(map[string]any)["$id"].(string)
	if err := c.AddResource(id, meta); err != nil {
		t.Fatal(err)
	}
	oas, err := c.Compile(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := oas.Validate(spec.Doc); err != nil {
		t.Errorf("openapi.yaml is not a valid OpenAPI 3.1 document:\n%v", err)
	}
	if v := spec.Doc["openapi"]; v != "3.1.0" {
		t.Errorf("openapi = %v, want 3.1.0", v)
	}

	components := spec.Doc["components"].(map[string]any)["schemas"].(map[string]any)
	for name := range components {
		if _, err := spec.Schema(apispec.Pointer("components", "schemas", name)); err != nil {
			t.Errorf("components/schemas/%s: %v", name, err)
		}
	}
	if _, err := spec.EventSchema(); err != nil {
		t.Errorf("event.schema.json: %v", err)
	}
}

// What the meta-schema leaves open: operation ids, responses, path
// parameters, references, security.
func TestOpenAPIOperations(t *testing.T) {
	spec := loadSpec(t)
	ids := map[string]string{}
	template := regexp.MustCompile(`\{([^}]+)\}`)
	for _, op := range spec.Operations() {
		name := op.Method + " " + op.Path
		id, _ := op.Op["operationId"].(string)
		if id == "" {
			t.Errorf("%s has no operationId", name)
		} else if other, dup := ids[id]; dup {
			t.Errorf("%s and %s share operationId %s", name, other, id)
		}
		ids[id] = name
		if s, _ := op.Op["summary"].(string); s == "" {
			t.Errorf("%s has no summary", name)
		}
		if tags, _ := op.Op["tags"].([]any); len(tags) == 0 {
			t.Errorf("%s has no tag", name)
		}

		responses, _ := op.Op["responses"].(map[string]any)
		success := false
		for code, r := range responses {
			resp, _, err := spec.Resolve(r.(map[string]any))
			if err != nil {
				t.Errorf("%s response %s: %v", name, code, err)
				continue
			}
			if code[0] == '2' {
				success = true
			}
			if code[0] >= '4' && resp["content"] == nil {
				t.Errorf("%s response %s describes no error body", name, code)
			}
		}
		if !success {
			t.Errorf("%s has no 2xx response", name)
		}
		security, hasSecurity := op.Op["security"].([]any)
		public := hasSecurity && len(security) == 0
		if _, has401 := responses["401"]; !public && !has401 {
			t.Errorf("%s needs an API key but describes no 401", name)
		}

		// Every {param} of the path is a path parameter of the operation
		// or its path item, and every path parameter is in the path.
		declared := map[string]bool{}
		item, _ := spec.Doc["paths"].(map[string]any)[op.Path].(map[string]any)
		for _, list := range []any{item["parameters"], op.Op["parameters"]} {
			params, _ := list.([]any)
			for _, p := range params {
				param, _, err := spec.Resolve(p.(map[string]any))
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if param["in"] == "path" {
					declared[param["name"].(string)] = true
					if param["required"] != true {
						t.Errorf("%s: path parameter %s is not required", name, param["name"])
					}
				}
			}
		}
		var inPath []string
		for _, m := range template.FindAllStringSubmatch(op.Path, -1) {
			inPath = append(inPath, m[1])
			if !declared[m[1]] {
				t.Errorf("%s: {%s} is not declared as a path parameter", name, m[1])
			}
		}
		for p := range declared {
			if !slices.Contains(inPath, p) {
				t.Errorf("%s: path parameter %s is not in the path", name, p)
			}
		}
	}
	if len(ids) < 30 {
		t.Errorf("%d operations; the description has lost some", len(ids))
	}

	// Every reference resolves: local ones to a value of the
	// description, the event schema to its file.
	refs := 0
	walk(spec.Doc, "", func(ptr string, obj map[string]any) {
		ref, ok := obj["$ref"].(string)
		if !ok {
			return
		}
		refs++
		if local, ok := strings.CutPrefix(ref, "#"); ok {
			if _, err := spec.Lookup(local); err != nil {
				t.Errorf("%s: $ref %s: %v", ptr, ref, err)
			}
			return
		}
		if ref != "event.schema.json" {
			t.Errorf("%s: $ref %s is neither local nor event.schema.json", ptr, ref)
		}
	})
	if refs == 0 {
		t.Error("no $ref found: the walk is broken")
	}
}

// walk calls f for every object in v, with its JSON pointer.
func walk(v any, ptr string, f func(string, map[string]any)) {
	switch c := v.(type) {
	case map[string]any:
		f(ptr, c)
		for k, e := range c {
			walk(e, ptr+apispec.Pointer(k), f)
		}
	case []any:
		for i, e := range c {
			walk(e, fmt.Sprintf("%s/%d", ptr, i), f)
		}
	}
}

// Every example validates against its schema: request and response
// bodies (media type examples), parameters, and the event schema's own;
// an example of a request the route refuses is marked x-invalid: true
// and must not validate.
func TestOpenAPIExamples(t *testing.T) {
	spec := loadSpec(t)
	count := 0
	invalid := false // the example at hand is marked x-invalid: true
	validate := func(where, schemaPtr string, value any) {
		t.Helper()
		count++
		sch, err := spec.Schema(schemaPtr)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		err = sch.Validate(value)
		switch {
		case invalid && err == nil:
			t.Errorf("%s is marked x-invalid but validates against %s", where, schemaPtr)
		case !invalid && err != nil:
			t.Errorf("%s does not validate against %s:\n%v", where, schemaPtr, err)
		}
	}
	walk(spec.Doc, "", func(ptr string, obj map[string]any) {
		if strings.HasPrefix(ptr, "/components/schemas") || ptr == "/components" {
			return // schema keywords and the shared examples, not media types
		}
		examples, _ := obj["examples"].(map[string]any)
		single, hasSingle := obj["example"]
		if examples == nil && !hasSingle {
			return
		}
		if _, ok := obj["schema"]; !ok {
			t.Errorf("%s has examples but no schema", ptr)
			return
		}
		schemaPtr := ptr + "/schema"
		mediaType := ptr[strings.LastIndex(ptr, "/")+1:]
		check := func(where string, value any) {
			switch {
			case strings.Contains(ptr, "/parameters/"):
				validate(where, schemaPtr, value)
			case mediaType == "application~1x-ndjson":
				// Each line is one event.
				sc := bufio.NewScanner(strings.NewReader(value.(string)))
				for n := 1; sc.Scan(); n++ {
					var ev any
					if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
						t.Errorf("%s line %d: %v", where, n, err)
						continue
					}
					line, _ := jsonValue(sc.Bytes())
					validate(fmt.Sprintf("%s line %d", where, n), "/components/schemas/Event", line)
				}
			case strings.HasPrefix(mediaType, "text~1"):
				if _, ok := value.(string); !ok {
					t.Errorf("%s: a %s example must be a string", where, mediaType)
				}
				count++
			default:
				validate(where, schemaPtr, value)
			}
		}
		if hasSingle {
			check(ptr+"/example", single)
		}
		for name, e := range examples {
			ex, _, err := spec.Resolve(e.(map[string]any))
			if err != nil {
				t.Errorf("%s/examples/%s: %v", ptr, name, err)
				continue
			}
			value, ok := ex["value"]
			if !ok {
				t.Errorf("%s/examples/%s has no value", ptr, name)
				continue
			}
			// An example of a request the route refuses says so.
			invalid = ex["x-invalid"] == true
			check(ptr+"/examples/"+name, value)
			invalid = false
		}
	})
	eventSchema, err := spec.EventSchema()
	if err != nil {
		t.Fatal(err)
	}
	for i, ex := range spec.Event["examples"].([]any) {
		count++
		if err := eventSchema.Validate(ex); err != nil {
			t.Errorf("event.schema.json examples[%d]: %v", i, err)
		}
	}
	// Every shared example is used.
	for name := range spec.Doc["components"].(map[string]any)["examples"].(map[string]any) {
		ref := "#/components/examples/" + name
		used := false
		walk(spec.Doc["paths"], "", func(_ string, obj map[string]any) { used = used || obj["$ref"] == ref })
		if !used {
			t.Errorf("%s is used nowhere", ref)
		}
	}
	if count < 40 {
		t.Errorf("only %d examples checked; the walk is broken or examples were lost", count)
	}
	t.Logf("%d examples validated", count)
}

func jsonValue(raw []byte) (any, error) {
	return apispec.YAMLToJSON(raw) // JSON is YAML; numbers come back as json.Number
}

// The compatible routes are described as their seeds (the API documents
// Tally started from, kept as contract tests in query/*/testdata) write
// them: their payloads validate where their values are real, and where the
// seed's values are placeholders ("<string>"), every member it names is
// described at the same place and every member the description requires
// is in the seed.
func TestOpenAPIMatchesSeeds(t *testing.T) {
	spec := loadSpec(t)
	validate := func(name string, sch *jsonschema.Schema, err error, value any) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := sch.Validate(value); err != nil {
			t.Errorf("%s does not validate:\n%v", name, err)
		}
	}
	load := func(path string) any {
		t.Helper()
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		v, err := jsonValue(raw)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	sch, err := spec.ResponseSchema("/api/v1/integration/organization/{org_id}/customers", "GET", 200, "application/json")
	validate("PriceOps' customers", sch, err, load("../query/priceops/testdata/seed-customers.json"))
	record, _ := jsonValue([]byte(`{"usage_record_id": "123457", "customer_id": "1008", "usage_data": [{"resource": "API", "quantity": 5000}]}`))
	sch, err = spec.Schema("/components/schemas/PriceOpsUsageRecord")
	validate("PriceOps' usage record", sch, err, record)
	sch, err = spec.Schema("/components/schemas/MeasureUsageRequest")
	validate("Measure's request", sch, err, load("../query/measure/testdata/seed-request.json"))

	// Lago's document, but for lago_invoice_id, which Tally always answers
	// null: current usage is not invoiced.
	lago, _ := jsonValue([]byte(`{"customer_usage": {"amount_cents": 123, "charges_usage": [], "currency": "EUR",
		"from_datetime": "2022-07-01T00:00:00Z", "issuing_date": "2022-08-01T23:59:59Z",
		"lago_invoice_id": null, "taxes_amount_cents": 200, "to_datetime": "2022-07-31T23:59:59Z", "total_amount_cents": 123}}`))
	sch, err = spec.ResponseSchema("/api/v1/customers/{external_customer_id}/current_usage", "GET", 200, "application/json")
	validate("Lago's current usage", sch, err, lago)

	measure := load("../query/measure/testdata/seed-response.json")
	root, err := spec.Lookup("/components/schemas/MeasureUsageResponse")
	if err != nil {
		t.Fatal(err)
	}
	sameNames(t, spec, "measure", root.(map[string]any), measure)
}

// sameNames compares the member names of value with those schema
// describes, recursively; a schema that describes no members (an open
// object) ends the comparison there.
func sameNames(t *testing.T, spec *apispec.Spec, at string, schema map[string]any, value any) {
	t.Helper()
	schema, _, err := spec.Resolve(schema)
	if err != nil {
		t.Fatalf("%s: %v", at, err)
	}
	switch v := value.(type) {
	case map[string]any:
		props, _ := schema["properties"].(map[string]any)
		if props == nil {
			return
		}
		for name, member := range v {
			sub, ok := props[name].(map[string]any)
			if !ok {
				t.Errorf("%s.%s is in the seed but not described", at, name)
				continue
			}
			sameNames(t, spec, at+"."+name, sub, member)
		}
		required, _ := schema["required"].([]any)
		for _, name := range required {
			if _, ok := v[name.(string)]; !ok {
				t.Errorf("%s.%s is required by the description but not in the seed", at, name)
			}
		}
	case []any:
		items, _ := schema["items"].(map[string]any)
		if items == nil {
			return
		}
		for i, e := range v {
			sameNames(t, spec, fmt.Sprintf("%s[%d]", at, i), items, e)
		}
	}
}

// schemaKeywords are the keywords of JSON Schema 2020-12 and those OpenAPI
// 3.1 adds to it. A schema member outside them is ignored by validators,
// so it is a mistake: a misspelt keyword, or YAML that split a
// description at a comma.
var schemaKeywords = strings.Fields(`$schema $id $ref $anchor $dynamicRef $dynamicAnchor $vocabulary $comment $defs
	allOf anyOf oneOf not if then else dependentSchemas prefixItems items contains properties patternProperties
	additionalProperties propertyNames unevaluatedItems unevaluatedProperties type enum const multipleOf maximum
	exclusiveMaximum minimum exclusiveMinimum maxLength minLength pattern maxItems minItems uniqueItems maxContains
	minContains maxProperties minProperties required dependentRequired format contentEncoding contentMediaType
	contentSchema title description default deprecated readOnly writeOnly examples discriminator xml externalDocs example`)

func TestOpenAPISchemaKeywords(t *testing.T) {
	spec := loadSpec(t)
	checked := 0
	var check func(at string, schema any)
	check = func(at string, schema any) {
		obj, ok := schema.(map[string]any)
		if !ok {
			return // true or false
		}
		checked++
		for k, v := range obj {
			switch {
			case strings.HasPrefix(k, "x-"):
			case !slices.Contains(schemaKeywords, k):
				t.Errorf("%s: %q is not a schema keyword", at, k)
			case k == "properties" || k == "patternProperties" || k == "$defs" || k == "dependentSchemas":
				members, _ := v.(map[string]any)
				for name, sub := range members {
					check(at+"/"+k+"/"+name, sub)
				}
			case k == "allOf" || k == "anyOf" || k == "oneOf" || k == "prefixItems":
				list, _ := v.([]any)
				for i, sub := range list {
					check(fmt.Sprintf("%s/%s/%d", at, k, i), sub)
				}
			case slices.Contains(strings.Fields("additionalProperties items contains not if then else propertyNames unevaluatedItems unevaluatedProperties contentSchema"), k):
				check(at+"/"+k, v)
			}
		}
	}
	for name, schema := range spec.Doc["components"].(map[string]any)["schemas"].(map[string]any) {
		check("components/schemas/"+name, schema)
	}
	walk(spec.Doc["paths"], "paths", func(ptr string, obj map[string]any) {
		if schema, ok := obj["schema"]; ok {
			check(ptr+"/schema", schema)
		}
	})
	check("event.schema.json", spec.Event)
	if checked < 200 {
		t.Errorf("only %d schemas checked; the walk is broken", checked)
	}
}

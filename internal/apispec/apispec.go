// Package apispec loads Tally's API description (schemas/openapi.yaml) and
// event JSON Schema (schemas/event.schema.json) for validation: request and
// response bodies against the schemas the description gives them. Tests
// use it to hold the description to the code; the servers do not.
package apispec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/tally-oss/tally/schemas"
)

// Where the two documents are published; relative references between
// them resolve against these.
const (
	SpecURL  = "https://github.com/tally-oss/tally/schemas/openapi.yaml"
	EventURL = "https://github.com/tally-oss/tally/schemas/event.schema.json"
)

// Methods are the operation keys of an OpenAPI path item.
var Methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// Spec is the API description, decoded, with a JSON Schema compiler that
// knows both documents.
type Spec struct {
	Doc      map[string]any // the description as JSON values
	Event    map[string]any // the event JSON Schema
	compiler *jsonschema.Compiler
}

// Operation is one method of one path of the description.
type Operation struct {
	Path   string // "/api/v1/meters/{key}"
	Method string // "GET"
	Op     map[string]any
}

// Load decodes the embedded documents.
func Load() (*Spec, error) {
	doc, err := YAMLToJSON(schemas.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	event, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemas.EventJSONSchema))
	if err != nil {
		return nil, fmt.Errorf("event.schema.json: %w", err)
	}
	s := &Spec{compiler: jsonschema.NewCompiler()}
	var ok bool
	if s.Doc, ok = doc.(map[string]any); !ok {
		return nil, fmt.Errorf("openapi.yaml is not a mapping")
	}
	if s.Event, ok = event.(map[string]any); !ok {
		return nil, fmt.Errorf("event.schema.json is not an object")
	}
	s.compiler.DefaultDraft(jsonschema.Draft2020)
	s.compiler.AssertFormat()
	if err := s.compiler.AddResource(SpecURL, doc); err != nil {
		return nil, err
	}
	if err := s.compiler.AddResource(EventURL, event); err != nil {
		return nil, err
	}
	return s, nil
}

// YAMLToJSON decodes YAML into the JSON values jsonschema validates
// (numbers as json.Number), failing on what JSON cannot hold, such as
// non-string keys.
func YAMLToJSON(data []byte) (any, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(raw))
}

// Pointer builds a JSON pointer from tokens, escaping each.
func Pointer(tokens ...string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}

// Schema compiles the schema at pointer (a JSON pointer into the
// description, such as "/components/schemas/Meter").
func (s *Spec) Schema(pointer string) (*jsonschema.Schema, error) {
	return s.compiler.Compile(SpecURL + "#" + fragment(pointer))
}

// EventSchema compiles the event JSON Schema.
func (s *Spec) EventSchema() (*jsonschema.Schema, error) {
	return s.compiler.Compile(EventURL)
}

// fragment escapes a JSON pointer for a URL fragment.
func fragment(pointer string) string {
	parts := strings.Split(pointer, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// Operations returns every operation, by path then method.
func (s *Spec) Operations() []Operation {
	paths, _ := s.Doc["paths"].(map[string]any)
	var ops []Operation
	for _, path := range sortedKeys(paths) {
		item, _ := paths[path].(map[string]any)
		for _, m := range Methods {
			if op, ok := item[m].(map[string]any); ok {
				ops = append(ops, Operation{Path: path, Method: strings.ToUpper(m), Op: op})
			}
		}
	}
	return ops
}

// Resolve follows a local $ref ("#/components/...") of v, if it has one.
func (s *Spec) Resolve(v map[string]any) (map[string]any, string, error) {
	ref, ok := v["$ref"].(string)
	if !ok {
		return v, "", nil
	}
	pointer, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, "", fmt.Errorf("$ref %q is not local", ref)
	}
	target, err := s.Lookup(pointer)
	if err != nil {
		return nil, "", err
	}
	obj, ok := target.(map[string]any)
	if !ok {
		return nil, "", fmt.Errorf("$ref %q is not an object", ref)
	}
	return obj, pointer, nil
}

// Lookup returns the value at a JSON pointer into the description.
func (s *Spec) Lookup(pointer string) (any, error) {
	var v any = s.Doc
	if pointer == "" {
		return v, nil
	}
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[tok]; !ok {
				return nil, fmt.Errorf("%s: no %q", pointer, tok)
			}
		case []any:
			var i int
			if _, err := fmt.Sscanf(tok, "%d", &i); err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("%s: no index %q", pointer, tok)
			}
			v = c[i]
		default:
			return nil, fmt.Errorf("%s: %q is inside a scalar", pointer, tok)
		}
	}
	return v, nil
}

// ResponseSchema compiles the schema of the answer to method path with
// status and media type, following a $ref to components/responses.
func (s *Spec) ResponseSchema(path, method string, status int, mediaType string) (*jsonschema.Schema, error) {
	pointer := Pointer("paths", path, strings.ToLower(method), "responses", fmt.Sprint(status))
	v, err := s.Lookup(pointer)
	if err != nil {
		return nil, fmt.Errorf("%s %s has no response %d: %w", method, path, status, err)
	}
	resp, _ := v.(map[string]any)
	resp, target, err := s.Resolve(resp)
	if err != nil {
		return nil, err
	}
	if target != "" {
		pointer = target
	}
	content, _ := resp["content"].(map[string]any)
	if _, ok := content[mediaType]; !ok {
		return nil, fmt.Errorf("%s %s response %d has no %s content (it has %v)", method, path, status, mediaType, sortedKeys(content))
	}
	return s.Schema(pointer + Pointer("content", mediaType, "schema"))
}

// RequestSchema compiles the schema of the request body of method path
// in mediaType.
func (s *Spec) RequestSchema(path, method, mediaType string) (*jsonschema.Schema, error) {
	pointer := Pointer("paths", path, strings.ToLower(method), "requestBody", "content", mediaType, "schema")
	if _, err := s.Lookup(pointer); err != nil {
		return nil, fmt.Errorf("%s %s takes no %s body: %w", method, path, mediaType, err)
	}
	return s.Schema(pointer)
}

// Example returns the value of a named example of the request body of
// method path, in mediaType.
func (s *Spec) Example(path, method, mediaType, name string) (any, error) {
	v, err := s.Lookup(Pointer("paths", path, strings.ToLower(method), "requestBody", "content", mediaType, "examples", name))
	example, _ := v.(map[string]any)
	if err == nil {
		example, _, err = s.Resolve(example)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s has no %s request example %q: %w", method, path, mediaType, name, err)
	}
	value, ok := example["value"]
	if !ok {
		return nil, fmt.Errorf("%s %s %s request example %q has no value", method, path, mediaType, name)
	}
	return value, nil
}

// ValidateJSON validates a JSON text against sch.
func ValidateJSON(sch *jsonschema.Schema, body []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return sch.Validate(v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

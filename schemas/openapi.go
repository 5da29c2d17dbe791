package schemas

import _ "embed"

// The API description (OpenAPI 3.1) of every route the ingest and query
// services serve, and the JSON Schema of one event, which the description
// refers to as event.schema.json. Producers validate events against the
// schema before sending; internal/apispec loads both for the tests that
// hold them to the code.
var (
	//go:embed openapi.yaml
	OpenAPI []byte
	//go:embed event.schema.json
	EventJSONSchema []byte
)

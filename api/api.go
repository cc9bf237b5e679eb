// Package api holds keygate's HTTP contract: openapi.yaml, an OpenAPI 3.1
// document of the check path, the management, logs and audit API and the
// operational endpoints. The server serves it as JSON at
// GET /v1/openapi.json, and its tests validate every request and response
// against it.
package api

import (
	_ "embed"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
)

//go:embed openapi.yaml
var specYAML []byte

// specJSON is the document converted once, at start.
var specJSON = mustJSON(specYAML)

// YAML returns the OpenAPI document as written. The caller must not
// modify it.
func YAML() []byte { return specYAML }

// JSON returns the OpenAPI document as JSON. The caller must not modify
// it.
func JSON() []byte { return specJSON }

func mustJSON(y []byte) []byte {
	var doc any
	if err := yaml.Unmarshal(y, &doc); err != nil {
		panic(fmt.Sprintf("api: openapi.yaml: %v", err))
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("api: openapi.yaml as JSON: %v", err))
	}
	return append(b, '\n')
}

package admin

import (
	_ "embed"
	"net/http"
	"slices"
)

// openAPI is the API's OpenAPI 3 document; a test checks it against the
// route table and validates the tests' responses with it.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPIDocument returns the API's OpenAPI 3 document, as served at
// /openapi.json.
func OpenAPIDocument() []byte { return slices.Clone(openAPI) }

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}

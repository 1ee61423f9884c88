package admin_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/admin"
)

// TestOpenAPIMatchesRoutes keeps openapi.json and the route table equal:
// every route is documented with its method and access, every documented
// operation is served, and the server gives the document out.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	b := setup(t)

	documented := map[string]string{} // "METHOD path" -> x-herald-access
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			access, _ := op.Extensions["x-herald-access"].(string)
			documented[method+" "+path] = access
		}
	}
	served := map[string]bool{}
	for _, rt := range admin.Routes() {
		key := rt.Method + " " + rt.Path
		require.False(t, served[key], "%s is in the route table twice", key)
		served[key] = true
		access, ok := documented[key]
		require.True(t, ok, "route %s is not in openapi.json", key)
		want := "read"
		if rt.Write {
			want = "write"
		}
		require.Equal(t, want, access, "x-herald-access of %s", key)
		require.True(t, strings.HasPrefix(rt.Path, "/v1/"), key)
	}
	for key := range documented {
		if key == "GET /openapi.json" {
			continue
		}
		require.True(t, served[key], "openapi.json documents %s, which the route table lacks", key)
		// And the router serves it: neither its 404 nor its 405.
		method, path, _ := strings.Cut(key, " ")
		status, _, out := b.call(t, method, fillPath(path, "nope"), readToken, "")
		require.NotEqual(t, http.StatusMethodNotAllowed, status, "%s: %s", key, out)
		require.NotContains(t, string(out), "no such route", key)
	}

	status, _, out := b.call(t, "GET", "/openapi.json", "", "")
	require.Equal(t, 200, status, "the document needs no token")
	require.JSONEq(t, string(admin.OpenAPIDocument()), string(out))
	var parsed map[string]any
	require.NoError(t, json.Unmarshal(out, &parsed))
	require.Equal(t, "3.0.3", parsed["openapi"])

	// Every operation documents its errors.
	for key := range documented {
		method, path, _ := strings.Cut(key, " ")
		op := doc.Paths.Find(path).GetOperation(method)
		if path == "/openapi.json" {
			continue
		}
		for _, code := range []string{"400", "401", "500"} {
			require.NotNil(t, op.Responses.Value(code), "%s documents no %s", key, code)
		}
		if access := documented[key]; access == "write" {
			require.NotNil(t, op.Responses.Value("403"), "%s documents no 403", key)
		}
		require.True(t, slices.ContainsFunc(op.Parameters, func(p *openapi3.ParameterRef) bool { return p.Ref == "#/components/parameters/source" }), key)
	}
}

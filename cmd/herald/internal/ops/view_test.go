package ops_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/ops"
)

// TestEndpointViewHidesSecrets: what a face prints of an endpoint holds no
// signing secret, no header value and no credential of its URL.
func TestEndpointViewHidesSecrets(t *testing.T) {
	t.Parallel()
	ep := full("acme")
	ep.URL = "https://user:hunter2@acme.example.com/hook?token=hunter2"
	out, err := json.Marshal(ep.View())
	require.NoError(t, err)
	for _, s := range []string{secretA, secretB, "hunter2"} {
		require.NotContains(t, string(out), s)
	}
	v := ep.View()
	require.Equal(t, 2, v.Secrets)
	require.Equal(t, []string{"Authorization", "X-Env"}, v.Headers)
	require.Equal(t, int64(3000), v.TimeoutMS)
	require.Nil(t, v.DisabledAt)
}

// TestListEndpointsSkippedAsJSON: a row that cannot be read shows in JSON
// by its name and what is wrong, never its values.
func TestListEndpointsSkippedAsJSON(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.pool.Exec(b.ctx, `INSERT INTO outbox.endpoints (name, url, secrets, headers) VALUES
		('number', 'https://a', '{`+secretA+`}', '{"Authorization": "Bearer hunter2", "X-Retry": 3}')`)
	require.NoError(t, err)
	_, skipped, err := ops.ListEndpoints(b.ctx, b.pool)
	require.NoError(t, err)
	out, err := json.Marshal(skipped)
	require.NoError(t, err)
	require.JSONEq(t, `[{"name": "number", "error": "headers: values must be strings: \"X-Retry\" is a number"}]`, string(out))
}

package ops_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
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

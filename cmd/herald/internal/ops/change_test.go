package ops_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/cmd/herald/internal/ops"
)

func TestEndpointChangeApply(t *testing.T) {
	t.Parallel()

	// An empty change keeps every setting.
	ep := full("acme")
	ops.EndpointChange{}.Apply(&ep)
	require.Equal(t, full("acme"), ep)

	// A change read from JSON replaces the settings it names, and only those.
	var c ops.EndpointChange
	require.NoError(t, json.Unmarshal([]byte(`{"url": "https://new.example.com/h", "secrets": ["`+secretB+`"],
		"topics": [], "headers": {"X-Key": "v"}, "timeout_ms": 2500, "permanent_statuses": [], "ordered": false,
		"tls_min_version": "1.2"}`), &c))
	c.Apply(&ep)
	want := full("acme")
	want.URL, want.Secrets, want.Topics = "https://new.example.com/h", []config.Secret{secretB}, nil
	want.Headers, want.Timeout, want.Ordered = map[string]config.Secret{"X-Key": "v"}, 2500*time.Millisecond, false
	want.TLS.MinVersion = "1.2"
	require.Equal(t, want, ep)
	require.NotNil(t, ep.PermanentStatuses, "an empty list means none, not the defaults")
	require.Empty(t, ep.PermanentStatuses)

	// Printing a change shows no secret and no header value.
	require.NotContains(t, fmt.Sprintf("%v %+v", c, *c.Secrets), secretB)
}

func TestCheckEndpoint(t *testing.T) {
	t.Parallel()

	cfg := config.Default()
	bad := full("acme")
	bad.URL, bad.MaxInFlight = "ftp://acme", -1
	warning, err := ops.CheckEndpoint(cfg, bad)
	require.NoError(t, warning)
	var ie *ops.InvalidEndpointError
	require.ErrorAs(t, err, &ie)
	var cerr *config.Error
	require.ErrorAs(t, err, &cerr, "the problems are reachable, each naming its field")
	require.Equal(t, "max_in_flight", cerr.Problems[0].Field)
	require.Equal(t, "endpoint acme has 2 problems:\n"+
		"  max_in_flight: must be between 1 and 10000 (got \"-1\")\n"+
		"  url: must be an absolute http or https URL (got \"ftp://acme\")", err.Error())

	slow := full("slow")
	slow.Timeout = 58 * time.Second // more than the default lease (60s) minus its margin
	warning, err = ops.CheckEndpoint(cfg, slow)
	require.NoError(t, err)
	require.EqualError(t, warning, "endpoint slow: timeout: must be at most relay.lease (1m) - 5s = 55s (got \"58s\") (with this configuration)")
	require.False(t, errors.As(warning, &ie))
}

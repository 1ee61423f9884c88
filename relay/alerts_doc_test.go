package relay_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/relay"
)

// TestAlertsDocMatchesTheSchemas: every example in docs/alerts.md decodes
// strictly (every field of its Go type present, no other) with
// relay.DecodeAlert, and the examples cover every event and type; the
// tests that receive real events decode them the same way, so the page,
// the types and what Herald writes agree.
func TestAlertsDocMatchesTheSchemas(t *testing.T) {
	doc, err := os.ReadFile("../docs/alerts.md")
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
	events := map[string]bool{}
	types := map[string]bool{}
	for _, b := range blocks {
		a, err := relay.DecodeAlert(b[1])
		require.NoError(t, err, "%s", b[1])
		switch a := a.(type) {
		case *relay.BreakerAlert:
			events[a.Event], types["breaker"] = true, true
		case *relay.EndpointAlert:
			events[a.Event], types["endpoint"] = true, true
		case *relay.DeadAlert:
			events[a.Event], types["dead"] = true, true
		case *relay.DeadSummaryAlert:
			events[a.Event], types["summary"] = true, true
		}
	}
	require.Equal(t, map[string]bool{relay.AlertBreakerOpened: true, relay.AlertBreakerClosed: true, relay.AlertDisabled: true,
		relay.AlertEnabled: true, relay.AlertMessageDead: true}, events)
	require.Len(t, types, 4)
	// Each field of each type is in the page's tables.
	for _, v := range []any{relay.BreakerAlert{}, relay.EndpointAlert{}, relay.DeadAlert{}, relay.DeadSummaryAlert{}} {
		for _, f := range relay.AlertFields(v) {
			require.Regexp(t, "(?m)^\\| `"+regexp.QuoteMeta(f)+"` \\|", string(doc), "%T.%s documented", v, f)
		}
	}
}

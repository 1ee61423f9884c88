package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/relay"
)

// Claiming is what herald's /readyz reads: it must say the relay claims
// while claims succeed, say why not while they fail, recover when they
// succeed again, and say so once the relay stops.
func TestClaimingFollowsTheClaims(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	r, err := relay.New(pool, relay.Config{Endpoints: []relay.Endpoint{endpoint(t, "a", "http://127.0.0.1:1/", "a.*")}})
	require.NoError(t, err)
	require.ErrorContains(t, r.Claiming(), "has not claimed yet")

	r = startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{endpoint(t, "a", "http://127.0.0.1:1/", "a.*")}})
	// The second claim's signal comes after the first claim was recorded.
	relay.Signals(r).Claimed.WaitFresh(t, 2, nil)
	require.NoError(t, r.Claiming())

	// Every claim fails while the hot lane is missing.
	heraldtest.Exec(t, pool, "ALTER TABLE outbox.messages RENAME TO messages_away")
	eventually(t, 10*time.Second, func() bool { return r.Claiming() != nil }, "Claiming reports the failing claims")
	require.ErrorContains(t, r.Claiming(), "the latest claim failed")
	require.ErrorContains(t, r.Claiming(), "messages")

	heraldtest.Exec(t, pool, "ALTER TABLE outbox.messages_away RENAME TO messages")
	relay.Signals(r).Claimed.WaitFresh(t, 2, nil)
	require.NoError(t, r.Claiming())

	require.NoError(t, r.Stop(context.Background()))
	require.ErrorContains(t, r.Claiming(), "stopping")
}

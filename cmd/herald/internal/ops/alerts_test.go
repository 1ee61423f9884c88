package ops_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/relay"
)

// alertRow is a herald.* message in the hot lane.
type alertRow struct {
	Topic   string
	Key     *string
	Payload []byte
}

func alertRows(t *testing.T, b *testBundle) []alertRow {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT topic, key, payload::text::bytea FROM outbox.messages WHERE topic LIKE 'herald.%' ORDER BY seq`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[alertRow])
	require.NoError(t, err)
	return out
}

// TestDisableAndEnableRaiseAlerts: disabling an enabled endpoint and
// enabling it again each write one event in the same statement, keyed by
// the endpoint, with the documented fields; a disable that only changes the
// reason writes none.
func TestDisableAndEnableRaiseAlerts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alerts := full("alerts")
	alerts.Topics = []string{"herald.endpoint.*"}
	require.NoError(t, ops.AddEndpoint(b.ctx, b.pool, alerts))
	require.NoError(t, ops.AddEndpoint(b.ctx, b.pool, full("acme")))

	before := time.Now()
	require.NoError(t, ops.DisableEndpoint(b.ctx, b.pool, "acme", "customer asked"))
	require.NoError(t, ops.DisableEndpoint(b.ctx, b.pool, "acme", "customer asked again"))
	require.NoError(t, ops.EnableEndpoint(b.ctx, b.pool, "acme"))
	require.NoError(t, ops.EnableEndpoint(b.ctx, b.pool, "acme")) // already enabled: no change, no event

	got := alertRows(t, b)
	require.Len(t, got, 2)
	require.Equal(t, relay.AlertDisabled, got[0].Topic)
	require.Equal(t, "acme", *got[0].Key)
	a, err := relay.DecodeAlert(got[0].Payload)
	require.NoError(t, err, "%s", got[0].Payload)
	disabled := a.(*relay.EndpointAlert)
	require.Equal(t, relay.EndpointAlert{Version: relay.AlertVersion, Event: relay.AlertDisabled, Endpoint: "acme",
		At: disabled.At, Reason: new("customer asked")}, *disabled)
	require.WithinDuration(t, before, disabled.At, time.Minute)

	require.Equal(t, relay.AlertEnabled, got[1].Topic)
	a, err = relay.DecodeAlert(got[1].Payload)
	require.NoError(t, err, "%s", got[1].Payload)
	enabled := a.(*relay.EndpointAlert)
	require.Equal(t, "acme", enabled.Endpoint)
	require.Nil(t, enabled.Reason)
	require.False(t, enabled.At.Before(disabled.At))
}

// TestDisableWithoutSubscriberWritesNoAlert: with no endpoint whose topics
// match herald.endpoint.disabled as the relay routes them (a catch-all
// "*" does not; '_' and '%' are not wildcards), nothing is written; and a
// disable that rolls back writes nothing either.
func TestDisableWithoutSubscriberWritesNoAlert(t *testing.T) {
	t.Parallel()
	b := setup(t)
	catchAll := full("catch-all")
	catchAll.Topics = []string{"*", "herald_endpoint.*", "herald.endpoint.disabled%", "herald.message.*"}
	require.NoError(t, ops.AddEndpoint(b.ctx, b.pool, catchAll))
	require.NoError(t, ops.AddEndpoint(b.ctx, b.pool, full("acme")))
	for _, p := range catchAll.Topics {
		require.False(t, relay.MatchTopic(p, relay.AlertDisabled), "the relay would not route it to %q either", p)
	}
	require.NoError(t, ops.DisableEndpoint(b.ctx, b.pool, "acme", ""))
	require.NoError(t, ops.EnableEndpoint(b.ctx, b.pool, "acme"))
	require.Empty(t, alertRows(t, b))

	alerts := full("alerts")
	alerts.Topics = []string{"herald.*"}
	require.NoError(t, ops.AddEndpoint(b.ctx, b.pool, alerts))
	require.ErrorIs(t, pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		require.NoError(t, ops.DisableEndpoint(b.ctx, tx, "acme", "rolled back"))
		require.Len(t, alertRows(t, b), 0, "not visible before commit")
		return context.Canceled // roll back
	}), context.Canceled)
	require.Empty(t, alertRows(t, b), "a disable that rolled back raised nothing")
	require.NoError(t, ops.DisableEndpoint(b.ctx, b.pool, "acme", ""))
	require.Len(t, alertRows(t, b), 1)
}
